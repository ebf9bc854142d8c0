// The smallest modules that use each build's instructions (as in
// wasm-feature-detect): WebAssembly.validate on one answers "does this
// runtime take the build?" without a pass over the whole core.
export const FEATURE_PROBES = {
  // i8x16.popcnt of a splat
  simd: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]),
  // i8x16.relaxed_swizzle of two splats
  relaxed: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 0, 253, 15, 65, 0, 253, 15, 253, 128, 2, 11]),
};
