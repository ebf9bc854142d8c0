// Byte permutations by an index vector, for AES's lookups and masks. Every
// index used is below 16 or in 0x80-0x8f, where i8x16.swizzle and
// i8x16.relaxed_swizzle agree (the byte or zero on every engine), so the
// Relaxed SIMD build may use the relaxed form: V8 lowers it to a bare
// pshufb, while swizzle costs a saturating add before it (it must zero
// indices 16-127 too), one more instruction on the shuffle ports and a
// longer critical path for the one-block rounds.
@inline export function swizzle(a: v128, s: v128): v128 {
  return ASC_FEATURE_RELAXED_SIMD ? i8x16.relaxed_swizzle(a, s) : i8x16.swizzle(a, s);
}
