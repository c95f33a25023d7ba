export declare function escapeXml(text: string): string;
export declare function renderSvg(result: unknown, options?: { title?: string }): string;
