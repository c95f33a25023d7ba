// Shared spellings of figures in tables, charts and the console.

export function formatSeconds(ms) {
  if (ms == null) return '-';
  const seconds = ms / 1000;
  return `${seconds < 1 ? seconds.toFixed(3) : seconds < 10 ? seconds.toFixed(2) : seconds.toFixed(1)} s`;
}

export function formatRate(bytesPerSecond) {
  if (bytesPerSecond == null) return '-';
  const mib = bytesPerSecond / 2 ** 20;
  return mib >= 1024 ? `${(mib / 1024).toFixed(2)} GiB/s` : `${mib.toFixed(0)} MiB/s`;
}

export function formatRss(kb) {
  return kb == null ? '-' : `${(kb / 1024).toFixed(0)} MiB`;
}

export function formatRatio(value) {
  return value == null ? '-' : `${value.toFixed(2)}x`;
}
