// Constant-time helpers: one place for comparisons that touch secrets.
import { ERR_LENGTH, inMemory } from './abi';

// 0 when the n bytes at a and b are equal, non-zero otherwise; the running
// time depends only on n.
export function ctDiff(a: usize, b: usize, n: usize): u32 {
  let d: u32 = 0;
  for (let i: usize = 0; i < n; i++) d |= load<u8>(a + i) ^ load<u8>(b + i);
  return d;
}

// Exported for hosts that compare tags themselves: 1 when equal, 0 otherwise
// (ERR_LENGTH for a range outside memory, rather than a trap).
export function ct_equal(a: usize, b: usize, n: usize): i32 {
  if (!inMemory(a, n) || !inMemory(b, n)) return ERR_LENGTH;
  return <i32>(((ctDiff(a, b, n) - 1) >>> 31) & 1);
}
