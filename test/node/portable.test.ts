// Runs the runtime-neutral vector suites under vitest on Node.
import { describe, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { suites } from '../portable/index.ts';

const read = (path: string) => readFile(new URL(`../vectors/${path}`, import.meta.url), 'utf8');

for (const [suite, cases] of Object.entries(suites)) {
  describe(suite, () => {
    for (const c of cases) it(c.name, () => c.run(read), 120_000);
  });
}
