// The Chromium test page's bundle (built by Vite in scripts/test-browser.mjs):
// runs every portable suite on every build the browser takes with vectors fetched from the
// local test server, and hands the results to the runner.
import { runSuites, type CaseResult } from '../portable/run.ts';
import { suites } from '../portable/index.ts';
import { coreBuilds } from '../../src/index.ts';

declare global {
  interface Window {
    senvRun(): Promise<CaseResult[]>;
    /** What a complete run holds: the builds taken and the cases per build (the runner checks the count). */
    senvPlan(): { builds: string[]; cases: number };
  }
}

window.senvPlan = () => ({ builds: coreBuilds(), cases: Object.values(suites).reduce((n, c) => n + c.length, 0) });

window.senvRun = () =>
  runSuites(async (path) => {
    const res = await fetch(`/vectors/${path}`);
    if (!res.ok) throw new Error(`vector ${path}: HTTP ${res.status}`);
    return res.text();
  }, coreBuilds());
