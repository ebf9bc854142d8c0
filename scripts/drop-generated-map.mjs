// Runs after tsc (npm run build): the embedded WASM module's source map would
// inline its source, the base64 of the three core builds, once more (550 KB
// of the package). Its four lines need no map: the map and the comment that
// names it go.
import { readFile, rm, writeFile } from 'node:fs/promises';

const js = new URL('../dist/src/core/wasm-binaries.generated.js', import.meta.url);
const text = await readFile(js, 'utf8');
await writeFile(js, text.replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n'));
await rm(new URL('../dist/src/core/wasm-binaries.generated.js.map', import.meta.url), { force: true });
