// The ANSI colour codes libnbd's nbdinfo uses when writing to a terminal (or with --color).
export const ANSI = {
  fgGrey: '\x1b[22;90m',
  fgBoldBlack: '\x1b[1;30m',
  fgGreen: '\x1b[22;32m',
  fgRed: '\x1b[22;31m',
  fgBrightWhite: '\x1b[1;37m',
  bgBlack: '\x1b[40m',
  bgLightGrey: '\x1b[47m',
  restore: '\x1b[0m',
} as const;
