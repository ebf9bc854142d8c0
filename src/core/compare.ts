// Constant-time comparison of MACs and tags for callers outside the core
// (the Mcs layer, the virtual card): runs in the core, whose loop time
// depends on the length only.
import { core } from './loader.ts';
import { bytesArg } from './errors.ts';

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  a = bytesArg(a, 'a');
  b = bytesArg(b, 'b');
  if (a.length !== b.length) return false;
  const c = core();
  if (2 * a.length > c.ioSize) {
    const pa = c.alloc(a.length, a);
    let pb = 0;
    try {
      // Inside the try: when the core has no room for b, a's block (a MAC) is zeroized and freed too.
      pb = c.alloc(b.length, b);
      return c.x.ct_equal(pa, pb, a.length) === 1;
    } finally {
      c.free(pa, a.length);
      c.free(pb, b.length);
    }
  }
  const m = c.mem();
  m.set(a, c.io);
  m.set(b, c.io + a.length);
  const equal = c.x.ct_equal(c.io, c.io + a.length, a.length) === 1;
  c.x.zeroize(c.io, 2 * a.length);
  return equal;
}
