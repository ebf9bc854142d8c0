// A refused request leaves no copy of the secrets it carried: the engine's
// private copies of byte values (keys, data) are zeroized whatever refused
// the request (the decoder, the checks before a resource exists, the checks
// of an UPDATE), and a chunk that is the caller's own array is left alone.
// The copies are internal, so Uint8Array.prototype.set and slice are watched
// for the arrays the secret is copied into (from the secret or from a view of
// its memory, which the engine reads byte values through).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { McsEngine } from '../../src/index.ts';
import { prng } from '../portable/harness.ts';
import { Session, fails, ok } from '../portable/mcs-kit.ts';

const realSet = Uint8Array.prototype.set;
const realSlice = Uint8Array.prototype.slice;
let secret: Uint8Array;
let copies: Uint8Array[] = [];
const ofSecret = (a: unknown) => secret !== undefined && ArrayBuffer.isView(a) && a.buffer === secret.buffer;

beforeEach(() => {
  copies = [];
  Uint8Array.prototype.set = function (this: Uint8Array, source: ArrayLike<number>, offset?: number) {
    if (ofSecret(source)) copies.push(this);
    return realSet.call(this, source as ArrayLike<number>, offset);
  } as typeof Uint8Array.prototype.set;
  Uint8Array.prototype.slice = function (this: Uint8Array, start?: number, end?: number) {
    const copy = realSlice.call(this, start, end);
    if (ofSecret(this)) copies.push(copy);
    return copy;
  } as typeof Uint8Array.prototype.slice;
});

afterEach(() => {
  Uint8Array.prototype.set = realSet;
  Uint8Array.prototype.slice = realSlice;
});

/** Sends `pc` in binary form with `secret` in it; expects `rsc` and every copy made of the secret zeroized. */
async function refused(s: Session, op: 1 | 3, to: string, pc: Record<string, unknown>, rsc: number, what: string, ty?: number): Promise<void> {
  fails(await s.send(op, to, pc, ty, true), rsc, what);
  expect(copies.length, `${what}: the secret was copied`).toBeGreaterThan(0);
  for (const c of copies) expect(c.every((b) => b === 0), `${what}: a copy is zeroized`).toBe(true);
  copies = [];
}

describe('Mcs: refused requests zeroize what they decoded', () => {
  it('CREATE and UPDATE refused at every stage', async () => {
    const rnd = prng(515);
    const s = new Session(await McsEngine.create(), 'CAE1');
    await s.register();
    secret = rnd(16);
    ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64 } }), 2001, 'cipher');
    ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: 'AAAA' } }), 2001, 'sdo');
    // CREATE: refused by the decoder after the key, by a missing mandatory attribute, by the name, by et.
    await refused(s, 1, s.seId, { 'senv:Cph': { kDt: secret, Calg: 1001, mbs: 64, nope: 1 } }, 4000, 'unknown attribute after kDt', 20002);
    await refused(s, 1, s.seId, { 'senv:Cph': { kDt: secret, Calg: 1001 } }, 4000, 'mbs missing', 20002);
    await refused(s, 1, s.seId, { 'senv:Cph': { rn: 'c', kDt: secret, Calg: 1001, mbs: 64 } }, 4105, 'name taken', 20002);
    await refused(s, 1, s.seId, { 'senv:Cph': { kDt: secret, Calg: 1001, mbs: 64, rn: 'bad/name' } }, 4000, 'bad name after kDt', 20002);
    await refused(s, 1, s.seId, { 'senv:Cph': { kDt: secret, Calg: 1001, mbs: 64, et: '20000101T000000' } }, 4000, 'et in the past', 20002);
    // UPDATE: refused by the decoder, by et, by the type's own check.
    await refused(s, 3, s.path('reg', 'd'), { 'senv:Sdo': { msg: secret, nope: 1 } }, 4000, 'sdo: unknown attribute after msg');
    await refused(s, 3, s.path('reg', 'd'), { 'senv:Sdo': { msg: secret, et: '20000101T000000' } }, 4000, 'sdo: et in the past');
    ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'b', Calg: 13, mbs: 64 } }), 2001, 'CBC cipher');
    ok(await s.create(s.path('reg', 'b'), 20001, { 'senv:algP': { rn: 'p', iV: 'AAAAAAAAAAAAAAAAAAAAAA==' } }), 2001, 'IV');
    secret = rnd(15);
    await refused(s, 3, s.path('reg', 'b', 'p'), { 'senv:algP': { iV: secret } }, 4000, 'algP: the type refuses a 15-byte IV');
    // A chunk is appended from the caller's own array: refused, it is not touched.
    const chunk = rnd(100);
    const before = chunk.slice();
    fails(await s.send(3, s.path('reg', 'c'), { 'senv:Cph': { msg: chunk } }, undefined, true), 5207, 'chunk beyond mbs');
    fails(await s.send(3, s.path('reg', 'c'), { 'senv:Cph': { msg: chunk.subarray(0, 10), cbs: 0 } }, undefined, true), 4000, 'chunk with cbs 0');
    expect(Buffer.from(chunk).equals(Buffer.from(before)), 'the caller\'s chunk is left alone').toBe(true);
  });
});
