export declare function parseSize(text: string | number): number;
export declare function sizeArg(bytes: number): string;
export declare function formatBytes(bytes: number): string;
