// Injected by esbuild into the single-file CommonJS bundles (dist/bundle/<tool>.cjs, made by
// `npm run build`): the sources read import.meta.url, e.g. to find package.json, and CommonJS
// has no import.meta, so the build defines import.meta.url as this value instead. The bundle
// sits two levels below the package root, like dist/cli/*.js, so relative URLs still resolve.
import { pathToFileURL } from 'node:url';

export const bundleImportMetaUrl = pathToFileURL(__filename).href;
