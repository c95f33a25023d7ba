export declare function cpuMsFromStat(text: string, ticks?: number): number | null;
export declare function processesCpuMs(pids: number[]): number | null;
