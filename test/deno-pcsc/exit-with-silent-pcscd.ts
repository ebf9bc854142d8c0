// Exits under Deno, by `Deno.exit()` or `process.exit()` as the first argument
// says, while an endless status-change wait is under way and pcscd has stopped
// answering (test/node/pcsc-silent-pcscd.test.ts freezes the socket to it when
// this prints 'waiting', and times the exit from 'exiting'). The bridge's exit
// listener cancels the wait from a bridge thread, and the exit waits for that
// 2 s at most: a cancel to a silent pcscd never returns.
import process from 'node:process';
import { PcscContext, PcscError } from '../../src/pcsc/index.ts';

declare const Deno: { args: string[]; exit(code: number): never };

const ctx = await PcscContext.establish();
const [reader] = await ctx.listReaders();
const [s] = await ctx.getStatusChange([{ reader: reader!, state: 0 }], 0);
ctx.getStatusChange([{ reader: reader!, state: s!.state }]).catch(() => {});
console.log('waiting');
// Until pcscd is silent: an establish that times out.
for (;;) {
  const other = await PcscContext.establish({ timeoutMs: 200 }).catch((e: unknown) => e);
  if (other instanceof PcscError && other.scardName === 'SCARD_E_TIMEOUT') break;
  if (other instanceof PcscContext) await other.release();
  await new Promise((r) => setTimeout(r, 50));
}
console.log('exiting');
if (Deno.args[0] === 'deno') Deno.exit(0);
process.exit(0);
