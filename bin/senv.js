#!/usr/bin/env node
// The `senv` command: runs the compiled CLI (npm run build creates dist/).
import { main } from '../dist/src/bindings/cli.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(`senv: ${err instanceof Error ? err.message : String(err)}`); process.exitCode = 1; },
);
