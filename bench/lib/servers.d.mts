export declare const NBDKIT: string;
export declare function serverArgv(
  kind: 'nbdkit' | 'nbdserve',
  spec: { backend: string; size: number; path?: string; delayReadMs?: number; delayWriteMs?: number; rateBits?: string; threads?: number },
  socket: string,
  repoRoot: string,
): string[];
