// Runs a senv case once per core build this runtime takes, so every table
// shows them side by side. The Relaxed SIMD build differs from the SIMD one
// in AES only, so only the AES tables show it.
import { initSync, coreBuilds, type CoreBuild } from '../src/index.ts';
import type { BenchCase } from './harness.ts';

export const AES_BUILDS: CoreBuild[] = coreBuilds();
export const BUILDS: CoreBuild[] = AES_BUILDS.filter((b) => b !== 'relaxed');

export function senvCases(fn: () => unknown, builds: CoreBuild[] = BUILDS): BenchCase[] {
  return builds.map((build) => ({ impl: `senv ${build}`, fn, setup: () => void initSync({ build }) }));
}
