export type ToolId = 'ours' | 'libnbd' | 'qemu-img';
export declare const TOOL_IDS: ToolId[];
export type End =
  | { kind: 'nbd'; uri: string }
  | { kind: 'file'; path: string }
  | { kind: 'null' }
  | { kind: 'stdout' }
  | { kind: 'info' };
export interface CommandContext {
  program: string;
  src: End;
  dst: End;
  size: number;
  nbdcopyArgs?: string[];
}
export type Command = { argv: string[]; stdout: 'ignore' | 'count' } | { skip: string };
export declare function programs(repoRoot: string): Record<ToolId, { copy: string; info: string }>;
export declare function buildCommand(toolId: ToolId, ctx: CommandContext): Command;
