#!/usr/bin/env node
// The `senv` command: runs the compiled CLI (npm run build creates dist/).
import { main } from '../dist/src/bindings/cli.js';

// A write of the command's output that fails ends the command at once (a virtual card's store is
// given up by its exit hook). A reader that went away (EPIPE: `senv ... | head -1`) ends it
// quietly, with the status a shell reports for a process SIGPIPE killed (128 + 13), as for any
// command whose reader went away; any other failure (ENOSPC: a full disk) is the command's failure,
// said on stderr when that is not the stream that failed.
for (const [name, stream] of [['stdout', process.stdout], ['stderr', process.stderr]]) {
  stream.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(141);
    if (stream === process.stdout) process.stderr.write(`senv: cannot write to ${name} (${e.code ?? e.message})\n`);
    process.exit(1);
  });
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(`senv: ${err instanceof Error ? err.message : String(err)}`); process.exitCode = 1; },
);
