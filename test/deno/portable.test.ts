// Runs the runtime-neutral vector suites under Deno: deno test --allow-read test/deno
import { suites } from '../portable/index.ts';

declare const Deno: {
  test(name: string, fn: () => void | Promise<void>): void;
  readTextFile(path: string | URL): Promise<string>;
};

const read = (path: string) => Deno.readTextFile(new URL(`../vectors/${path}`, import.meta.url));

for (const [suite, cases] of Object.entries(suites)) {
  for (const c of cases) Deno.test(`${suite}: ${c.name}`, () => c.run(read));
}
