// nbdcopy --help and --version text.
import fs from 'node:fs';

export const NBDCOPY_USAGE = `Usage: nbdcopy [OPTIONS] SOURCE DESTINATION
       nbdcopy [OPTIONS] --batch=FILE [-j N] [--fail-fast] [--shard=I/N]
Copy a disk image between local files, block devices, pipes and NBD servers.

SOURCE, DESTINATION := - | FILE | DEVICE | NBD-URI | [ CMD ARGS ... ]
DESTINATION        += null:

Options:
      --allocated             make the destination fully allocated (no holes)
      --blkhash[=ALG[/SIZE]]  print the block hash of the source: ALG md5, sha1, sha256
                              (default) or sha512, SIZE a power of 2 (default 64K)
      --blkhash-file=FILE     write the block hash into FILE instead of stdout
      --checkpoint=FILE       record what is done in FILE; a later run resumes from it
  -C, --connections=N         NBD connections per side when both allow multi-conn (default 4)
      --destination-is-zero   the destination already reads as zeroes: skip zero blocks
      --dirty-bitmap=NAME     copy only what qemu dirty bitmap NAME of the source marks,
                              into an existing destination
      --target-is-zero        same as --destination-is-zero
      --flush                 flush the destination before exiting
      --no-extents            ignore the source's hole information and read everything
  -p, --progress              a progress bar on stderr (plain lines when it is not a terminal)
      --progress=FD           write "N/100" progress lines to file descriptor FD
      --progress-json[=FD]    JSON lines (progress, done, error) on FD (default 2, stderr)
      --queue-size=N          bytes in flight per connection (default 16M)
      --request-size=N        largest request, a power of 2 up to 32M (default 256K)
  -R, --requests=N            requests in flight per connection (default 64)
  -S, --sparse=N              turn all-zero blocks of N bytes into holes (default 4096, 0 = off)
      --synchronous           one request at a time, in order
  -T, --threads=N             caps the connections (default: online CPUs)
  -v, --verbose               print debugging information to stderr
      --verify                after copying, read the destination back and compare
  -V, --version               print the version and exit
      --help                  print this help and exit
      --rate=SIZE             read at most SIZE bytes per second from the source (e.g. 100M)
      --retries=N             open a lost (or not yet served) NBD connection up to N times
                              in a row and resend what had no reply (default 0: no retries)
      --retry-delay=DURATION  pause before the first attempt, doubling (default 1s; 500ms, 2m)

Many copies:
      --batch=FILE            copies from FILE (- for stdin), one JSON object a line:
                              {"source": ..., "destination": ..., "options": {...}}
  -j, --jobs=N                copies at once (default 1)
      --fail-fast             after a failed copy, stop the others and start no more
      --shard=I/N             run only the lines whose number is I modulo N (0 <= I < N)

Sizes accept K, M, G, T suffixes (powers of 1024). Put "--" before [ CMD ] groups whose
arguments look like options, e.g.: nbdcopy -- [ nbdkit -r pattern 1G ] out.img
`;

export function nbdcopyVersion(): string {
  let version = 'unknown';
  try {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    version = pkg.version ?? version;
  } catch {
    /* running from an unusual layout: keep 'unknown' */
  }
  return `nbdcopy ${version}\nnbd-toolkit ${version}\n`;
}
