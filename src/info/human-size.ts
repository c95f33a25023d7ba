// Sizes as libnbd abbreviates them: exact multiples of powers of 1024 get a suffix
// (1048576 -> "1M", 2125119488 -> "2075312K"); anything else stays in plain bytes.

const SUFFIXES = ['', 'K', 'M', 'G', 'T', 'P', 'E'];

export interface HumanSize {
  text: string;
  /** True when the text carries a suffix (libnbd then prints "N (text)"). */
  abbreviated: boolean;
}

/** Exact for every 64-bit size (a bigint), as libnbd's is. */
export function humanSize(bytes: bigint): HumanSize {
  if (bytes === 0n) return { text: '0', abbreviated: false };
  let value = bytes;
  let i = 0;
  while (i < SUFFIXES.length - 1 && value % 1024n === 0n) {
    value /= 1024n;
    i++;
  }
  return { text: `${value}${SUFFIXES[i]}`, abbreviated: i > 0 };
}
