// Constant-time comparison of MACs and tags for callers outside the core
// (the Mcs layer, the virtual card): runs in the core, whose loop time
// depends on the length only.
import { core } from './loader.ts';
import { bytesArg } from './args.ts';

/**
 * Whether `a` and `b` hold the same bytes, in time that depends on their length only: compare MACs
 * and tags with this. Arrays of different lengths are unequal (false at once: a length is not secret).
 * @throws InvalidInputError when either is not a Uint8Array.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  a = bytesArg(a, 'a');
  b = bytesArg(b, 'b');
  if (a.length !== b.length) return false;
  const c = core();
  const m = c.mem();
  // Through the I/O window, half for each side: no block to allocate, so no length the core's
  // blocks cannot hold; every part is compared, whatever an earlier one found.
  const half = c.ioSize >>> 1;
  let equal = 1;
  let off = 0;
  do {
    const n = Math.min(half, a.length - off);
    m.set(a.subarray(off, off + n), c.io);
    m.set(b.subarray(off, off + n), c.io + n);
    equal &= c.x.ct_equal(c.io, c.io + n, n);
    off += n;
  } while (off < a.length);
  c.x.zeroize(c.io, Math.min(c.ioSize, 2 * a.length));
  return equal === 1;
}
