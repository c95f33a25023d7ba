export declare const TIME_FORMAT: string;
export interface TimeFigures {
  elapsedMs: number;
  userMs: number;
  sysMs: number;
  maxRssKb: number;
}
export declare function parseTimeOutput(text: string): TimeFigures | null;
