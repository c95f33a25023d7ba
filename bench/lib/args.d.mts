export declare const USAGE: string;
export interface BenchOptions {
  quick: boolean;
  scenarios: string[];
  tools: Array<'ours' | 'libnbd' | 'qemu-img'>;
  runs: number;
  warmup: boolean;
  server: 'nbdkit' | 'nbdserve' | null;
  ours: string | null;
  label: string | null;
  json: string | null;
  markdown: boolean;
  svg: string | null;
  baseline: string | null;
  threshold: number | null;
  current: string | null;
  list: boolean;
  help: boolean;
}
export declare function parseBenchArgs(argv: string[]): BenchOptions;
