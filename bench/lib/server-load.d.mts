/** What runLoad needs of a client library connection. */
export interface LoadClient {
  readonly state: string;
  readonly error: { message: string } | undefined;
  pread(buf: Buffer, offset: number): Promise<unknown>;
  pwrite(buf: Buffer, offset: number): Promise<unknown>;
  zero(length: number, offset: number): Promise<unknown>;
  trim(length: number, offset: number): Promise<unknown>;
  flush(): Promise<unknown>;
  blockStatus(length: number, offset: number): Promise<Map<string, readonly { length: number; flags: number }[]>>;
  close(): Promise<unknown>;
}
export type Connect = (uri: string, options: { maxInFlight: number }) => Promise<LoadClient>;

export interface Latency {
  n: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}
export interface Drops {
  count: number;
  reasons: string[];
}
export interface LoadResult {
  requests: Record<'read' | 'write' | 'zero' | 'trim' | 'flush' | 'block_status', number>;
  total: number;
  errors: number;
  first_error: string | undefined;
  dropped_by_server: Drops;
  latency: Latency;
}
export interface AbuserKind {
  opened: number;
  dropped_by_server: number;
  closed_by_us: number;
  open: number;
  /** Drops by how they showed: 'EOF', 'EPIPE', 'ECONNRESET'... */
  how: Record<string, number>;
  /** Milliseconds from the abusers' start to the last drop of this kind. */
  last_drop_ms: number;
  options_sent?: number;
  open_at_stop?: number;
}
export type AbuseReport = Record<'half_handshake' | 'flooder' | 'options' | 'write_4g', AbuserKind>;
export interface Abusers {
  start(): void;
  report(): AbuseReport;
  stop(): Promise<AbuseReport>;
}

export declare const SLOT: number;
export declare function makeRandom(seed: number): () => number;
export declare function peakRss(pid: number): number;
export declare function rssWatch(pid: number): { peakBytes(): number; stop(): number };
export declare function latencySummary(lat: number[]): Latency;
export declare function runLoad(options: { connect: Connect; uri: string; clients: number; depth: number; seconds: number; seed?: number; connected?: () => void }): Promise<LoadResult>;
export declare function roundTrips(client: LoadClient, until: number, offset?: number): Promise<number[]>;
export declare function droppedByServer(client: LoadClient): boolean;
export declare function openAbusers(sock: string, counts?: { halfHandshakes?: number; floodRequests?: number; options?: number }): Promise<Abusers>;
