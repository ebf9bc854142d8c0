// Runs every portable suite on each requested core build and reports results;
// used by the Chromium page (the Node and Deno runners map cases onto their
// own test APIs instead).
import { initSync, type CoreBuild } from '../../src/index.ts';
import { suites } from './index.ts';
import type { ReadVector } from './harness.ts';

export interface CaseResult {
  build: CoreBuild;
  suite: string;
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export async function runSuites(read: ReadVector, builds: CoreBuild[], onResult?: (r: CaseResult) => void): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const build of builds) {
    for (const [suite, cases] of Object.entries(suites)) {
      for (const c of cases) {
        initSync({ build });
        const t0 = performance.now();
        let r: CaseResult;
        try {
          await c.run(read);
          r = { build, suite, name: c.name, ok: true, ms: performance.now() - t0 };
        } catch (e) {
          r = { build, suite, name: c.name, ok: false, ms: performance.now() - t0, error: String((e as Error)?.stack ?? e) };
        }
        results.push(r);
        onResult?.(r);
      }
    }
  }
  return results;
}
