export interface Run {
  ok: boolean;
  wallMs: number;
  userMs: number | null;
  sysMs: number | null;
  maxRssKb: number | null;
  serverCpuMs?: number | null;
  exitCode?: number | null;
  error?: string;
}
export interface Summary {
  runs: number;
  failed: number;
  medianWallMs: number | null;
  minWallMs: number | null;
  maxWallMs: number | null;
  medianCpuMs: number | null;
  maxRssKb: number | null;
  medianServerCpuMs: number | null;
  bytesPerSecond: number | null;
}
export declare function median(values: number[]): number | null;
export declare function minimum(values: number[]): number | null;
export declare function maximum(values: number[]): number | null;
export declare function summarizeRuns(runs: Run[], bytes: number): Summary;
export declare function ratio(ours: number | null | undefined, theirs: number | null | undefined): number | null;
export declare function percentChange(before: number | null | undefined, after: number | null | undefined): number | null;
