export declare function renderDetailTable(result: unknown): string;
export declare function renderSummaryTable(result: unknown): string;
export declare function renderMarkdown(result: unknown): string;
export declare function renderContext(result: unknown): string;
export declare function renderStartupTable(result: unknown): string;
