export declare const DEFAULT_NOISE_PCT: number;
export declare const EXIT_REGRESSION: number;
export interface ComparisonEntry {
  scenario: string;
  tool: string;
  beforeMs: number | null;
  afterMs: number | null;
  changePct: number | null;
  verdict: 'slower' | 'faster' | 'same' | 'new' | 'gone' | 'n/a';
  ratioBefore?: number | null;
  ratioAfter?: number | null;
}
export interface Comparison {
  entries: ComparisonEntry[];
  regressions: ComparisonEntry[];
  exitCode: number;
  bandPct: number;
}
export declare function compareResults(
  baseline: unknown,
  current: unknown,
  options?: { thresholdPct?: number | null },
): Comparison;
export declare function formatComparison(comparison: Comparison): string;
