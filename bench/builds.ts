// Runs a senv case once per core build, so every table shows SIMD and scalar.
import { initSync, type CoreBuild } from '../src/index.ts';
import type { BenchCase } from './harness.ts';

export const BUILDS: CoreBuild[] = ['simd', 'scalar'];

export function senvCases(fn: () => unknown): BenchCase[] {
  return BUILDS.map((build) => ({ impl: `senv ${build}`, fn, setup: () => void initSync({ build }) }));
}
