// Runs the runtime-neutral vector suites under vitest on Node, once per core build.
import { describe, it, beforeEach } from 'vitest';
import { readFile } from 'node:fs/promises';
import { initSync, coreBuilds } from '../../src/index.ts';
import { suites } from '../portable/index.ts';

const read = (path: string) => readFile(new URL(`../vectors/${path}`, import.meta.url), 'utf8');

for (const build of coreBuilds()) {
  describe(`${build} build`, () => {
    beforeEach(() => void initSync({ build }));
    for (const [suite, cases] of Object.entries(suites)) {
      describe(suite, () => {
        for (const c of cases) it(c.name, () => c.run(read), 300_000);
      });
    }
  });
}
