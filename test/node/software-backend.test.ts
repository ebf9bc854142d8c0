// The software SE called directly, as an engine or a third party's code calls it: what its
// life cycle, its keys and its streams refuse, and the prehashed ECDSA stream. (The checks of its
// arguments are in api-surface.test.ts; what the engine makes of a backend in the portable
// contract suite.)
import { describe, expect, it } from 'vitest';
import { ecdsa, InvalidInputError, markKeyHandle, sha256, SoftwareBackend, StateError, type KeyHandle, type KeySpec } from '../../src/index.ts';

/** What `p` rejects with (undefined when it fulfils). */
const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

describe('SoftwareBackend life cycle', () => {
  it('an SE not yet opened, or closed, runs no operation: StateError naming its state, not a self-test failure', async () => {
    const b = new SoftwareBackend();
    await expect(b.random(1, 8)).rejects.toThrow(new StateError('software SE is new'));
    expect(() => b.digest(4)).toThrow(/^software SE is new$/);
    await b.open();
    expect((await b.random(1, 8)).length).toBe(8);
    await b.close();
    const e = await rejection(b.random(1, 8));
    expect(e).toBeInstanceOf(StateError);
    expect((e as Error).message).toBe('software SE is closed');
    expect(() => b.digest(4)).toThrow(/^software SE is closed$/);
  });

  it('a reboot of a closed SE is refused and does not open it again', async () => {
    const b = new SoftwareBackend();
    await b.open();
    await b.reboot(1);
    await b.close();
    const e = await rejection(b.reboot(2));
    expect(e).toBeInstanceOf(StateError);
    expect((e as Error).message).toBe('backend closed');
    await expect(b.random(1, 8), 'still closed').rejects.toThrow(/^software SE is closed$/);
  });
});

describe('SoftwareBackend randomness', () => {
  it('rngType 1 and the keys it makes reseed the SE\'s HMAC_DRBG from the OS every 4096 requests, as randomBytes does', async () => {
    const b = new SoftwareBackend();
    await b.open();
    await b.random(1, 1);
    const real = globalThis.crypto.getRandomValues;
    const sizes: number[] = [];
    globalThis.crypto.getRandomValues = (<T extends ArrayBufferView | null>(a: T): T => {
      sizes.push(a!.byteLength);
      return real.call(globalThis.crypto, a as never) as T;
    }) as typeof globalThis.crypto.getRandomValues;
    try {
      // The first request instantiated it: 4095 more use its counter up, the next one reseeds.
      for (let i = 1; i < 4096; i++) await b.random(1, 1);
      expect(sizes, 'no draw before the interval ran out').toEqual([]);
      await b.generateKey({ use: 'cipher', algorithm: 1001 });
      expect(sizes, 'one entropy input of 32 bytes').toEqual([32]);
    } finally {
      globalThis.crypto.getRandomValues = real;
      await b.close();
    }
  });
});

describe('SoftwareBackend capabilities', () => {
  it('the lists and rngSources every instance hands out refuse a write: one changed through an SE would change every other SE\'s', async () => {
    const mine = new SoftwareBackend(), other = new SoftwareBackend();
    await other.open();
    const before = JSON.stringify([other.capabilities, other.description.rngSources]);
    const { cipherAlgorithms, hashAlgorithms, signatureAlgorithms, rngTypes, rebootTypes } = mine.capabilities;
    for (const [what, list] of Object.entries({ cipherAlgorithms, hashAlgorithms, signatureAlgorithms, rngTypes, rebootTypes })) {
      expect(() => (list as number[]).splice(0), what).toThrow(TypeError);
      expect(() => (list as number[]).push(99), what).toThrow(TypeError);
    }
    expect(() => void ((mine.description.rngSources as Record<number, string>)[1] = 'tampered')).toThrow(TypeError);
    expect(JSON.stringify([other.capabilities, other.description.rngSources])).toBe(before);
    const key = await other.generateKey({ use: 'cipher', algorithm: 1001 });
    expect(await other.cipher(1001, key, 'encrypt', { nonce: new Uint8Array(12) }).final(new Uint8Array(4))).toHaveLength(20);
    expect(await other.digest(4).final(Uint8Array.of(1))).toEqual(sha256(Uint8Array.of(1)));
    await expect(other.reboot(3 as never)).rejects.toThrow(InvalidInputError);
    await other.close();
  });
});

describe('SoftwareBackend keys', () => {
  it('key material of a kind other than secret or public is refused; so is a public key for an algorithm that has none', async () => {
    const b = new SoftwareBackend();
    await b.open();
    for (const kind of ['private', undefined, 1]) {
      const e = await rejection(b.importKey({ use: 'cipher', algorithm: 1001 }, kind as never, new Uint8Array(16)));
      expect(e, String(kind)).toBeInstanceOf(InvalidInputError);
      expect((e as Error).message, String(kind)).toBe("key kind must be 'secret' or 'public'");
    }
    // AES and HMAC keys are symmetric: no public half to import or load.
    for (const [spec, n] of [[{ use: 'cipher', algorithm: 1001 }, 16], [{ use: 'signature', algorithm: 25 }, 32]] as [KeySpec, number][]) {
      const e = await rejection(b.importKey(spec, 'public', new Uint8Array(n).fill(1)));
      expect(e, `${spec.use} ${spec.algorithm}`).toBeInstanceOf(InvalidInputError);
      expect((e as Error).message).toBe(`algorithm ${spec.algorithm} has no public key`);
      const loaded = await rejection(b.loadKey(spec, { form: 'material', kind: 'public', bytes: new Uint8Array(n).fill(1) }));
      expect((loaded as Error).message).toBe(`algorithm ${spec.algorithm} has no public key`);
    }
    await b.close();
  });

  it('a stored key that references a device key is refused: the software SE keeps none', async () => {
    const b = new SoftwareBackend();
    await b.open();
    const e = await rejection(b.loadKey({ use: 'cipher', algorithm: 1001 }, { form: 'reference', kind: 'secret', ref: 'slot 3' }));
    expect(e).toBeInstanceOf(StateError);
    expect((e as Error).message).toBe('the software SE keeps no device key references');
    await b.close();
  });

  it('a key handle another backend made is refused by every use, as StateError', async () => {
    const b = new SoftwareBackend();
    await b.open();
    // As a card's backend makes one: marked, of the same shape, for a key kept on its device.
    const foreign: KeyHandle = markKeyHandle({ spec: { use: 'cipher', algorithm: 1001 }, kind: 'secret', size: 0 });
    const refusedBy = [
      ['exportKey', () => b.exportKey(foreign)], ['storeKey', () => b.storeKey(foreign)], ['publicKey', () => b.publicKey(foreign)],
      ['cipher', async () => b.cipher(1001, foreign, 'encrypt', { nonce: new Uint8Array(12) })],
      ['signature', async () => b.signature(25, foreign, { format: 'der', prehashed: false })],
    ] as const;
    for (const [what, call] of refusedBy) {
      const e = await rejection(call());
      expect(e, what).toBeInstanceOf(StateError);
      expect((e as Error).message, what).toBe('key handle belongs to another backend');
    }
    await b.close();
  });
});

describe('SoftwareBackend streams', () => {
  it('a stream that ended (final or abort) refuses more input and a second end: StateError, not a new message', async () => {
    const b = new SoftwareBackend();
    await b.open();
    const msg = Uint8Array.of(1, 2, 3);
    const d = b.digest(4);
    await d.update(msg);
    expect(await d.final()).toEqual(sha256(msg));
    await expect(d.update(msg)).rejects.toThrow(new StateError('stream already finished'));
    expect(() => d.final(msg)).toThrow(/^stream already finished$/);
    // Never updated: its one-shot final ends it just the same.
    const once = b.digest(4);
    expect(await once.final(msg)).toEqual(sha256(msg));
    expect(() => once.final()).toThrow(/^stream already finished$/);
    const aborted = b.digest(4);
    await aborted.update(msg);
    aborted.abort();
    await expect(aborted.update(msg)).rejects.toThrow(/^stream already finished$/);
    expect(() => aborted.final()).toThrow(/^stream already finished$/);
    await b.close();
  });

  it('a prehashed ECDSA stream signs the digest it was sent in parts, joined; the signature verifies over that digest', async () => {
    const b = new SoftwareBackend();
    await b.open();
    const key = await b.generateKey({ use: 'signature', algorithm: 33 });
    const pub = (await b.publicKey(key))!;
    const digest = sha256(Uint8Array.of(9, 9, 9));
    const s = b.signature(33, key, { format: 'raw', prehashed: true });
    await s.update(digest.slice(0, 10));
    await s.update(digest.slice(10, 20));
    const sig = await s.sign(digest.slice(20));
    expect(ecdsa('P-256').verify(sig, digest, pub, { format: 'raw', prehashed: true })).toBe(true);
    // And verification streams the same way.
    const v = b.signature(33, key, { format: 'raw', prehashed: true });
    await v.update(digest.slice(0, 16));
    await v.update(digest.slice(16));
    expect(await v.verify(sig)).toBe(true);
    await b.close();
  });
});
