import { defineConfig } from 'vitest/config';
import { FEATURE_PROBES } from './src/core/feature-probes.ts';

// Node 22+ validates Relaxed SIMD (the 'relaxed' core build) by default,
// Node 20 only with a V8 flag, which the test workers get so that all three
// builds are tested on every Node.
export default defineConfig({
  test: {
    include: ['test/node/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    execArgv: WebAssembly.validate(FEATURE_PROBES.relaxed) ? [] : ['--experimental-wasm-relaxed-simd'],
    // `npm run coverage`: what the Node suite runs of src/ in its own processes (docs/testing.md).
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      exclude: ['src/core/wasm-binaries.generated.ts'],
      reporter: ['text-summary', 'json', 'html'],
      reportsDirectory: 'coverage',
    },
  },
});
