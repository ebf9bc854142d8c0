// Every benchmark module, by name (`senv bench --only <name>` runs one).
import type { BenchModule } from './harness.ts';
import { sha2Bench } from './sha2.ts';

export const benchModules: Record<string, BenchModule> = {
  sha2: sha2Bench,
};
