export declare function makeTempDir(prefix?: string): string;
export declare function removeDir(dir: string | undefined): void;
