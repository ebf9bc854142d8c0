// Where senv's randomness comes from, and what it does when that source is
// missing or broken (docs/drbg.md, "Entropy source"): crypto.getRandomValues is
// the only source, so a runtime without it, a source that throws and one that
// hands back its array unfilled (a stub, a broken polyfill) are CoreErrors,
// never seed material of zeros that every process would share.
import { afterEach, describe, expect, it } from 'vitest';
import { CoreError, ecdsa, HmacDrbg, McsClient, McsEngine, SoftwareBackend } from '../../src/index.ts';

const realGetRandomValues = globalThis.crypto.getRandomValues;
const cryptoProperty = Object.getOwnPropertyDescriptor(globalThis, 'crypto')!;

/** Replaces crypto.getRandomValues until the test ends. */
function stubSource(fill: (a: Uint8Array) => void): void {
  globalThis.crypto.getRandomValues = (<T extends ArrayBufferView | null>(a: T): T => {
    fill(a as unknown as Uint8Array);
    return a;
  }) as typeof globalThis.crypto.getRandomValues;
}

afterEach(() => {
  Object.defineProperty(globalThis, 'crypto', cryptoProperty);
  globalThis.crypto.getRandomValues = realGetRandomValues;
});

/** Each of senv's ways to draw from the runtime's source, run against it as it is now. */
async function draws(backend: SoftwareBackend): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  const tries: Record<string, () => unknown> = {
    'HMAC_DRBG instantiation': () => new HmacDrbg({ hash: 'SHA-512' }),
    'rngType 2, 32 bytes': () => backend.random(2, 32),
    'rngType 2, 3 bytes': () => backend.random(2, 3),
    'rngType 2, 1 MiB': () => backend.random(2, 1 << 20),
    'hedged ECDSA': () => ecdsa('P-256').sign(new Uint8Array(1), new Uint8Array(32).fill(1)),
  };
  for (const [what, draw] of Object.entries(tries)) {
    try {
      results[what] = await draw();
    } catch (e) {
      results[what] = e;
    }
  }
  return results;
}

describe('a missing or broken entropy source is a CoreError, never a weak seed', () => {
  it('a getRandomValues that leaves its array unfilled (all zeros) is refused by every consumer', async () => {
    const backend = new SoftwareBackend();
    await backend.open();
    stubSource(() => {});
    for (const [what, r] of Object.entries(await draws(backend))) {
      expect(r, what).toBeInstanceOf(CoreError);
      expect((r as Error).message, what).toMatch(/^the runtime's entropy source \(crypto\.getRandomValues\) returned \d+ equal bytes: it is broken or stubbed$/);
    }
    await backend.close();
  });

  it('a source that fills every byte with one value, or leaves only the end of a large request unfilled, is refused too', async () => {
    const backend = new SoftwareBackend();
    await backend.open();
    stubSource((a) => a.fill(0xa5));
    expect(() => new HmacDrbg()).toThrow(CoreError);
    // Each 64 KiB call is tested: one that fills nothing after the first is caught.
    let calls = 0;
    stubSource((a) => {
      if (calls++ === 0) realGetRandomValues.call(globalThis.crypto, a);
    });
    await expect(backend.random(2, 1 << 20)).rejects.toThrow(CoreError);
    // A last piece of 5 bytes is drawn as 16 (over the end of the piece before) and tested alike.
    calls = 0;
    await expect(backend.random(2, 65536 + 5)).rejects.toThrow(new CoreError("the runtime's entropy source (crypto.getRandomValues) returned 16 equal bytes: it is broken or stubbed"));
    globalThis.crypto.getRandomValues = realGetRandomValues;
    expect((await backend.random(2, 65536 + 5)).length).toBe(65541);
    await backend.close();
  });

  it('a source that throws is a CoreError that names its kind, not its message', async () => {
    stubSource(() => {
      throw Object.assign(new Error('secret detail'), { code: 'EIO' });
    });
    expect(() => new HmacDrbg()).toThrow(new CoreError("the runtime's entropy source (crypto.getRandomValues) failed (EIO)"));
  });

  it('a runtime with no crypto.getRandomValues at all is a CoreError, not a TypeError', async () => {
    const backend = new SoftwareBackend();
    await backend.open();
    Object.defineProperty(globalThis, 'crypto', { value: undefined, configurable: true, writable: true });
    for (const [what, r] of Object.entries(await draws(backend))) {
      expect(r, what).toBeInstanceOf(CoreError);
      expect((r as Error).message, what).toMatch(/^this runtime has no crypto\.getRandomValues/);
    }
    await backend.close();
  });

  it('over Mcs a <rand> and a key generation answer 5000 while the source is broken, and serve again once it works', async () => {
    const engine = await McsEngine.create();
    const me = new McsClient(engine, 'CAE1');
    await me.register('me');
    const [r1, r2] = [await me.rand({ rngType: 1 }), await me.rand({ rngType: 2 })];
    const cipher = await me.cipher({ algorithm: 22, maxByteSize: 64, exportable: true });
    stubSource(() => {});
    for (const call of [() => r1.generate(16), () => r2.generate(16), () => cipher.generateKey()]) {
      await expect(call()).rejects.toMatchObject({ rsc: 5000, message: 'internal error (ERR_CORE)' });
    }
    globalThis.crypto.getRandomValues = realGetRandomValues;
    expect((await r1.generate(16)).length).toBe(16);
    expect((await r2.generate(3)).length).toBe(3);
    expect((await cipher.generateKey())!.length).toBe(32);
    await engine.close();
  });

  it('a working source passes: the lengths asked for, and no two draws alike', async () => {
    const backend = new SoftwareBackend();
    await backend.open();
    const r = await draws(backend);
    for (const [what, v] of Object.entries(r)) expect(v, what).not.toBeInstanceOf(Error);
    expect((r['rngType 2, 3 bytes'] as Uint8Array).length).toBe(3);
    expect((r['rngType 2, 1 MiB'] as Uint8Array).length).toBe(1 << 20);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(Buffer.from(await backend.random(2, 16)).toString('hex'));
    expect(seen.size).toBe(1000);
    await backend.close();
  });
});
