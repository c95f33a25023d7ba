export declare function scenarioRatios(
  rows: Array<{ tool: string; skipped?: string; summary?: { medianWallMs: number | null; medianCpuMs: number | null } }>,
): Record<string, { wall: number | null; cpu: number | null }>;
export declare const MIN_CPU_MS_FOR_RATIO: number;
export declare function startupFigures(
  rows: Array<{ tool: string; skipped?: string; summary?: { medianWallMs: number | null } }>,
  nodeFloor: { medianWallMs: number | null } | undefined,
): { nodeMs: number; oursMinusNodeMs: number; libnbdMs: number | null; ratio: number | null } | null;
