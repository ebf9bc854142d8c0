// Runs the runtime-neutral vector suites under Deno, once per core build:
//   deno test --allow-read test/deno
import { initSync, coreBuilds, CORE_BUILDS } from '../../src/index.ts';
import { suites } from '../portable/index.ts';

declare const Deno: {
  test(name: string, fn: () => void | Promise<void>): void;
  readTextFile(path: string | URL): Promise<string>;
};

const read = (path: string) => Deno.readTextFile(new URL(`../vectors/${path}`, import.meta.url));

// Deno ships Relaxed SIMD: a run on fewer builds would pass with cases missing.
Deno.test('this runtime takes every core build', () => {
  if (coreBuilds().join() !== CORE_BUILDS.join()) throw new Error(`builds taken: ${coreBuilds().join(', ')}`);
});

for (const build of coreBuilds()) {
  for (const [suite, cases] of Object.entries(suites)) {
    for (const c of cases) {
      Deno.test(`${build}: ${suite}: ${c.name}`, () => {
        initSync({ build });
        return c.run(read);
      });
    }
  }
}
