// The build derives the inverse S-box circuit from the forward one
// (scripts/gen-aes-invsbox.mjs) and must refuse a circuit that is wrong:
// these feed it the real assembly/aes-sbox.ts and broken copies of it.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { generateInvSbox as generate } from '../../scripts/gen-aes-invsbox.mjs';
const source = readFileSync(new URL('../../assembly/aes-sbox.ts', import.meta.url), 'utf8');

/** The source with one exact occurrence of `from` replaced. */
function mutate(from: string, to: string): string {
  expect(source.split(from).length, `'${from}' occurs once`).toBe(2);
  return source.replace(from, to);
}

describe('gen-aes-invsbox', () => {
  it('derives the same module from the forward circuit every time', () => {
    const a = generate(source);
    expect(a).toBe(generate());
    expect(a).toContain('export function invSboxPlanes<T>(q: usize): void {');
    expect(a).toMatch(/checked on all 256 inputs/);
  });

  it('refuses a forward circuit with a wrong gate in the top layer', () => {
    expect(() => generate(mutate('t0 = X<T>(u1, u2)', 't0 = X<T>(u1, u3)'))).toThrow(/forward circuit gives S\(/);
  });

  it('refuses a forward circuit with a wrong product in the middle', () => {
    expect(() => generate(mutate('t2 = A<T>(y12, y15)', 't2 = A<T>(y12, y14)'))).toThrow(/forward circuit gives S\(/);
  });

  it('refuses a forward circuit whose affine constant is missing', () => {
    expect(() => generate(mutate('s6 = X<T>(t56, N<T>(t62))', 's6 = X<T>(t56, t62)'))).toThrow(/forward circuit gives S\(/);
  });

  it('refuses outputs stored to the wrong planes', () => {
    expect(() => generate(mutate('st<T>(q, 7, s0); st<T>(q, 6, s1);', 'st<T>(q, 7, s1); st<T>(q, 6, s0);'))).toThrow(/forward circuit gives S\(/);
  });

  it('refuses a source without the sections it reads', () => {
    expect(() => generate(mutate('// Bottom linear layer', '// Bottom layer'))).toThrow(/section "\/\/ Bottom linear layer" not found/);
  });
});
