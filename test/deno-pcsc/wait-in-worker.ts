// A Deno worker that starts an endless status-change wait and says so
// (bridge.test.ts terminates it during the wait). The reader comes in the
// first message.
import { PcscContext } from '../../src/pcsc/index.ts';

const scope = self as unknown as { onmessage: (e: { data: string }) => void; postMessage(m: unknown): void };
scope.onmessage = async ({ data: reader }) => {
  const ctx = await PcscContext.establish();
  const [s] = await ctx.getStatusChange([{ reader, state: 0 }], 0);
  ctx.getStatusChange([{ reader, state: s!.state }]).catch(() => {});
  scope.postMessage('waiting');
};
