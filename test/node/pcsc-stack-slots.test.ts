// The test stack's vpcd slots (scripts/pcsc-stack.mjs): a slot holding a card the stack did not
// insert, such as a `senv virtual-card` of the user's own, is passed over. `senv bench`'s apdu
// module and every PC/SC test take their slot there, and inserting a second card into an occupied
// slot waits in vpcd's backlog until it fails.
import { afterAll, describe, expect, it } from 'vitest';
import { acquireSlot, acquireStack } from '../../scripts/pcsc-stack.mjs';
import { PcscContext } from '../../src/pcsc/index.ts';
import { createVirtualCard } from '../../src/virtual-card/index.ts';
import { waitPresent } from '../../bench/ses.ts';

const stack = await acquireStack();
if (!stack.ok && (process.env.SENV_REQUIRE_PCSC === '1' || process.env.CI)) throw new Error(`PC/SC stack unavailable: ${stack.reason}`);

describe.skipIf(!stack.ok)(`vpcd slots${stack.ok ? '' : ` (skipped: ${stack.ok ? '' : stack.reason})`}`, () => {
  afterAll(async () => {
    if (stack.ok) await stack.release();
  });

  it('a slot whose card the stack did not insert is not handed out, though no process holds its lock', async () => {
    const ctx = await PcscContext.establish();
    const taken = await acquireSlot();
    // A card of the user's: in the slot, its lock given up, as `senv virtual-card --slot N` leaves it.
    const foreign = createVirtualCard({ port: taken.port, keepAlive: false });
    try {
      await foreign.vpcd.insert();
      expect(await waitPresent(ctx, taken.reader, 10_000)).toBe(true);
      await taken.release();
      const next = await acquireSlot().catch((e: unknown) => e as Error);
      if (next instanceof Error) {
        // The other slot holds a card of the user's too: refused at once, naming both, not waited for.
        expect(next.message).toMatch(new RegExp(`^no free vpcd slot: .*'${taken.reader}'.* hold cards the stack did not insert`));
      } else {
        await next.release();
        expect(next.slot).not.toBe(taken.slot);
      }
    } finally {
      await foreign.vpcd.remove();
      await ctx.release();
    }
  }, 150_000);
});
