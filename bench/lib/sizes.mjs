// Byte sizes in the notation nbdkit and nbdcopy users type (4G, 512M, 64k).
// Binary multiples, like nbdkit: 1K = 1024.

const UNITS = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Parse "4G", "512M", "1048576" into a number of bytes. */
export function parseSize(text) {
  const match = /^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(String(text));
  if (!match) throw new Error(`not a size: ${JSON.stringify(text)}`);
  const bytes = Number(match[1]) * UNITS[match[2].toUpperCase()];
  if (!Number.isSafeInteger(bytes)) throw new Error(`size too large: ${text}`);
  return bytes;
}

/** Shortest exact spelling of a byte count for nbdkit's command line: 4G, 1536M, 100. */
export function sizeArg(bytes) {
  for (const unit of ['T', 'G', 'M', 'K']) {
    if (bytes >= UNITS[unit] && bytes % UNITS[unit] === 0) return `${bytes / UNITS[unit]}${unit}`;
  }
  return String(bytes);
}

/** Human-readable binary size for tables: "4 GiB", "1.5 GiB", "512 MiB". */
export function formatBytes(bytes) {
  const names = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let index = 0;
  while (value >= 1024 && index < names.length - 1) {
    value /= 1024;
    index += 1;
  }
  const digits = Number.isInteger(value) ? 0 : value < 10 ? 2 : 1;
  return `${value.toFixed(digits)} ${names[index]}`;
}
