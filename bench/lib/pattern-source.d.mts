import type { ChildProcess } from 'node:child_process';
export declare const OUR_NBDCOPY: string;
export interface OptionReader {
  (name: string, fallback: string): string;
  (name: string): string | undefined;
}
export declare function failInOneLine(script: string): void;
export declare function optionReader(argv: string[]): OptionReader;
export declare function runsOption(option: OptionReader, fallback: string): number;
export interface PatternSource {
  dir: string;
  uri: string;
  children: Set<ChildProcess>;
}
export declare function startPatternSource(prefix: string, size: string): Promise<PatternSource>;
