// Ends while a status-change wait is under way, as the first argument says
// (test/node/pcsc-deno.test.ts times it): `process.exit()`, `Deno.exit()`, or
// `unload`, which only dispatches the global 'unload' event that Deno.exit()
// dispatches (instead of node:process's 'exit') and reports what became of
// the wait and of one asked for afterwards. The bridge ends its waits on
// either event, and the exit must not hang.
import process from 'node:process';
import { PcscContext, PcscError } from '../../src/pcsc/index.ts';

declare const Deno: { args: string[]; exit(code: number): never; env: { get(name: string): string | undefined } };

const reader = Deno.env.get('SENV_DENO_PCSC_READER')!;
const ctx = await PcscContext.establish();
const [s] = await ctx.getStatusChange([{ reader, state: 0 }], 0);
const ended = (p: Promise<unknown>) => p.then(() => 'changed', (e: unknown) => (e instanceof PcscError ? e.scardName : String(e)));
const running = ended(ctx.getStatusChange([{ reader, state: s!.state }]));
// Registered after the bridge's own listeners (the wait above added them), so they run after them.
process.on('exit', () => console.log('exit listeners ran'));
addEventListener('unload', () => console.log('unload listeners ran'));
await new Promise((r) => setTimeout(r, 200));
console.log('waiting');
if (Deno.args[0] === 'deno') Deno.exit(0);
if (Deno.args[0] === 'process') process.exit(0);
dispatchEvent(new Event('unload'));
console.log(`the wait: ${await running}`);
const t0 = Date.now();
const later = await ended(ctx.getStatusChange([{ reader, state: s!.state }], 2_000));
console.log(`a wait asked for afterwards: ${later} ${Date.now() - t0 < 1_000 ? 'at once' : 'late'}`);
