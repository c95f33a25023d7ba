import type { Run } from './stats.mjs';
export declare const GNU_TIME: string;
export declare function haveGnuTime(): boolean;
export declare function runMeasured(options: {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  tmpDir: string;
  stdout?: 'ignore' | 'count';
  timeoutMs: number;
}): Promise<Run & { stdoutBytes?: number }>;
export declare function reasonFromStderr(text: string): string;
