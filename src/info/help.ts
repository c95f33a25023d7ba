// Text of nbdinfo --help (our own words; the synopsis follows the man page's modes).
export const HELP_TEXT = `
Show what an NBD server offers: the export's size, flags, block sizes and
contexts, a map of allocated and sparse areas, or the list of all exports.

Usage:

    nbdinfo [--json] NBD-URI | [ CMD ARGS ... ]
    nbdinfo --size [--json] NBD-URI | [ CMD ARGS ... ]
    nbdinfo --is read-only|rotational|tls NBD-URI | [ CMD ARGS ... ]
    nbdinfo --can cache|connect|... NBD-URI | [ CMD ARGS ... ]
    nbdinfo --has extended-headers|structured-replies|... NBD-URI
    nbdinfo --cannot|--isnt|--hasnt PROPERTY NBD-URI | [ CMD ARGS ... ]
    nbdinfo --uri [--json] NBD-URI
    nbdinfo --map[=CONTEXT] [--totals] [--json] NBD-URI | [ CMD ARGS ... ]
    nbdinfo -L|--list [--json] NBD-URI | [ CMD ARGS ... ]

Other options:

    --content / --no-content    run file(1) on the first sectors (or not)
    --color / --no-color        ANSI colours (default: when stdout is a terminal)
    --help                      this text
    -V, --version               version

Examples:

    nbdinfo nbd://localhost
    nbdinfo "nbd+unix:///?socket=/tmp/nbd.sock"
    nbdinfo --size nbds://server.example/disk
    nbdinfo --can trim nbd://localhost
    nbdinfo --map=qemu:dirty-bitmap:bitmap0 nbd://localhost
    nbdinfo --map --totals -- [ qemu-nbd -r -f qcow2 disk.qcow2 ]

Exit status: 0 on success; with --can/--is/--has 0 means yes and 2 means no (the other way
round with --cannot/--isnt/--hasnt); 1 on any error.
`;
