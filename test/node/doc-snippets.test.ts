// The code examples of README.md and docs/ run as written against the
// package root: each snippet's import names what the root exports, and its
// calls succeed on inputs of the lengths the surrounding text promises. The
// values a snippet takes from its reader (key, nonce, data...) are given
// here; the PC/SC example needs a reader: pcsc-backend.test.ts runs it.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import * as root from '../../src/index.ts';

const rnd = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));

/** What a snippet's reader brings, by the name the snippet uses. */
const GIVEN: Record<string, () => unknown> = {
  key: () => rnd(16),
  keyBytes: () => rnd(32),
  nonce: () => rnd(12),
  nonce12: () => rnd(12),
  iv: () => rnd(16),
  aad: () => rnd(20),
  plaintext: () => rnd(100),
  data: () => rnd(48),
  blocks: () => rnd(32),
  part1: () => rnd(7),
  part2: () => rnd(70),
  messages: () => [rnd(0), rnd(55), rnd(64)],
  msg: () => rnd(33),
  message: () => rnd(33),
  personalization: () => rnd(16),
  additionalInput: () => rnd(16),
  expectedMac: () => rnd(32),
  // docs/ecdsa.md's conversion recipe: keys as OpenSSL, node and Java write them (DER).
  pkcs8Der: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' }),
  spkiDer: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }),
};

interface Snippet {
  file: string;
  code: string;
}

function snippets(file: string): Snippet[] {
  const text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
  return [...text.matchAll(/^```(?:ts|js)\n([\s\S]*?)^```$/gm)].map((m) => ({ file, code: m[1]! }));
}

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<void>;

/** Runs a snippet with its import bound to the package root and each name it reads from GIVEN passed in. */
async function run({ code }: Snippet, extra: Record<string, unknown> = {}): Promise<void> {
  const imports = [...code.matchAll(/^import \{([^}]*)\} from 'onem2m-senv';$/gm)].flatMap((m) => m[1]!.split(',').map((n) => n.trim()).filter(Boolean));
  for (const name of imports) expect(root, `the root exports ${name}`).toHaveProperty(name);
  const body = code.replace(/^import .*$/gm, '');
  const given = { ...Object.fromEntries(Object.entries(GIVEN).map(([k, make]) => [k, make()])), ...extra };
  const names = [...imports, ...Object.keys(given)];
  // The body in a block of its own: a const it declares may shadow a given name.
  const fn = new AsyncFunction(...names, `{\n${body}\n}`);
  await fn(...imports.map((n) => (root as Record<string, unknown>)[n]), ...Object.values(given));
}

describe('code examples in the docs', () => {
  const all = ['README.md', 'docs/aes.md', 'docs/drbg.md', 'docs/ecdsa.md', 'docs/mcs.md', 'docs/pcsc.md'].flatMap(snippets);

  it('are found where they should be, and each imports from the package root', () => {
    expect(all.filter((s) => s.file === 'README.md').length).toBeGreaterThanOrEqual(4);
    for (const s of all) expect(s.code, s.file).toMatch(/from 'onem2m-senv(\/pcsc)?';/);
  });

  it('run as written (the PC/SC one needs a reader: pcsc-backend.test.ts runs it)', async () => {
    for (const s of all.filter((s) => !s.code.includes("'onem2m-senv/pcsc'"))) {
      // A prehashed signature takes a digest of the hash it names.
      const named = /hash: 'SHA-(256|384|512)'/.exec(s.code)?.[1];
      await expect(run(s, { digest: rnd(named ? Number(named) / 8 : 32) }), `${s.file}:\n${s.code}`).resolves.toBeUndefined();
    }
  });
});
