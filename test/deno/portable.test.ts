// Runs the runtime-neutral vector suites under Deno, once per core build:
//   deno test --allow-read test/deno
import { initSync, coreBuilds } from '../../src/index.ts';
import { suites } from '../portable/index.ts';

declare const Deno: {
  test(name: string, fn: () => void | Promise<void>): void;
  readTextFile(path: string | URL): Promise<string>;
};

const read = (path: string) => Deno.readTextFile(new URL(`../vectors/${path}`, import.meta.url));

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
