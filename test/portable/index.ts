// Every portable suite, by name; each runner (Node, Deno, Chromium) runs them all.
import type { PortableCase } from './harness.ts';
import { sha2Cases } from './sha2.ts';
import { errorCases } from './errors.ts';

export const suites: Record<string, PortableCase[]> = {
  sha2: sha2Cases,
  'hash errors': errorCases,
};
