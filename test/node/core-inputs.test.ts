// How the facade reads its callers' byte arrays: through their typed-array
// slots (a Buffer, a subclass or an own property cannot change what is read
// or copied), detached views refused by name, and nothing left behind in the
// core's I/O window or in the facade's private copies when a call ends or fails.
import { describe, it, expect } from 'vitest';
import {
  aesKey, gcm, ccm, cbc, cmac, createCmac, sha256, hash, hmac, createHash, createHmac, hashMany, constantTimeEqual, HmacDrbg, randomBytes,
  coreMemoryStats, InvalidInputError, LengthError, PaddingError, AuthenticationError, UnknownAlgorithmError, SoftwareBackend, StateError, CoreError,
  ecdsa, init, initSync, hmacDrbg,
} from '../../src/index.ts';
import { core } from '../../src/core/loader.ts';
import { coreOf } from '../../src/core/context.ts';
import { CHUNK } from '../../src/core/aes.ts';
import { KNOWN_ANSWERS, selftest } from '../../src/core/selftest.ts';
import { arraysMade, isFreshBuffer } from './uint8array-spy.ts';
import nodeCrypto from 'node:crypto';

const rnd = (n: number) => globalThis.crypto.getRandomValues(new Uint8Array(n));

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const detached = (n = 16) => {
  const a = rnd(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
};
/** Offsets in WASM memory where `pattern` occurs. */
function found(pattern: Uint8Array): number[] {
  const m = core().mem(), at: number[] = [];
  for (let p = m.indexOf(pattern[0]!); p >= 0; p = m.indexOf(pattern[0]!, p + 1)) {
    if (hex(m.subarray(p, p + pattern.length)) === hex(pattern)) at.push(p);
  }
  return at;
}

describe('byte arguments are read through their typed-array slots', () => {
  it('a Buffer nonce, IV, AAD or chunk is copied, not kept as a view (Buffer#slice is a view)', () => {
    const key = rnd(16), pt = rnd(32);
    const n = Buffer.from(rnd(12));
    const g1 = gcm(key, n);
    const first = hex(g1.encrypt(pt));
    n[11]! ^= 1;
    expect(hex(g1.encrypt(pt)), 'the object keeps the nonce it was given').toBe(first);
    expect(hex(gcm(key, n).encrypt(pt))).not.toBe(first);
    const iv = Buffer.from(rnd(16)), c1 = cbc(key, iv), c1ct = hex(c1.encrypt(pt));
    iv.fill(0);
    expect(hex(c1.encrypt(pt))).toBe(c1ct);
    const aad = Buffer.from('header-v1'), g3 = gcm(key, rnd(12), aad), e1 = hex(g3.encrypt(pt));
    aad.write('header-v2');
    expect(hex(g3.encrypt(pt))).toBe(e1);

    // CCM without messageLength collects its input: the caller's Buffer is neither wiped nor read late.
    const nonce = rnd(12), plain = Buffer.alloc(31, 0x41);
    const s = ccm(key, nonce).encryptStream();
    s.update(plain);
    plain.fill(0x42);
    const sealed = s.final();
    expect(hex(sealed)).toBe(hex(ccm(key, nonce).encrypt(new Uint8Array(31).fill(0x41))));
    expect(plain.every((b) => b === 0x42), "the caller's array is untouched").toBe(true);
    const ct = Buffer.from(sealed), d = ccm(key, nonce).decryptStream();
    d.update(ct);
    expect(hex(d.final())).toBe(hex(new Uint8Array(31).fill(0x41)));
    expect(hex(ct)).toBe(hex(sealed));

    // A decryption stream fed from one reused read buffer.
    const gn = rnd(12), msg = rnd(64), whole = gcm(key, gn).encrypt(msg);
    const readBuf = Buffer.alloc(40), ds = gcm(key, gn).decryptStream();
    readBuf.set(whole.subarray(0, 40));
    ds.update(readBuf);
    readBuf.set(whole.subarray(40, 80));
    ds.update(readBuf);
    expect(hex(ds.final())).toBe(hex(msg));
  });

  it('a length, slice or subarray that lies changes nothing: the real bytes are read', () => {
    class Liar extends Uint8Array {
      override get length(): number {
        return 4096;
      }
      override slice(): Uint8Array<ArrayBuffer> {
        return new Uint8Array(1 << 20);
      }
      override subarray(): Uint8Array<ArrayBuffer> {
        return new Uint8Array(1 << 20);
      }
    }
    const own = new Uint8Array([1, 2, 3, 4]);
    Object.defineProperty(own, 'length', { value: 4096 });
    // Something else's message in the I/O window first: a lie about the length would read it back.
    hmac('SHA-256', rnd(32), new TextEncoder().encode('SECRET-HMAC-MESSAGE-'.repeat(20)));
    const key = rnd(16), n12 = rnd(12);
    for (const [what, tiny, real] of [['subclass', new Liar([1, 2, 3, 4]), new Uint8Array([1, 2, 3, 4])], ['own property', own, new Uint8Array([1, 2, 3, 4])]] as const) {
      expect(hex(gcm(key, n12).encrypt(tiny)), what).toBe(hex(gcm(key, n12).encrypt(real)));
      expect(hex(sha256(tiny)), what).toBe(hex(sha256(real)));
      expect(hex(hmac('SHA-384', tiny, tiny)), what).toBe(hex(hmac('SHA-384', real, real)));
      expect(hex(cmac(key, tiny)), what).toBe(hex(cmac(key, real)));
      expect(hex(createHash('SHA-512').update(tiny).digest()), what).toBe(hex(hash('SHA-512', real)));
      expect(hex(hashMany('SHA-256', [tiny, real])[0]!), what).toBe(hex(sha256(real)));
      const s = gcm(key, n12).encryptStream();
      expect(hex(new Uint8Array([...s.update(tiny), ...s.final()])), what).toBe(hex(gcm(key, n12).encrypt(real)));
    }
    // A key that claims 16 bytes but holds more never overruns the key slot.
    class LongKey extends Uint8Array {
      override get length(): number {
        return 16;
      }
    }
    expect(() => gcm(new LongKey(1 << 16), n12).encrypt(rnd(4))).toThrow(LengthError);
  });

  it('a view of a detached buffer is an InvalidInputError that says so, in every entry point', () => {
    const key = rnd(16), n12 = rnd(12);
    const calls: [string, () => unknown][] = [
      ['sha256', () => sha256(detached())],
      ['hash', () => hash('SHA-384', detached())],
      ['createHash().update', () => createHash('SHA-256').update(detached())],
      ['hashMany', () => hashMany('SHA-256', [rnd(3), detached()])],
      ['hmac key', () => hmac('SHA-256', detached(), rnd(3))],
      ['hmac data', () => hmac('SHA-256', rnd(32), detached())],
      ['createHmac', () => createHmac('SHA-256', detached())],
      ['createHmac().update', () => createHmac('SHA-256', rnd(32)).update(detached())],
      ['constantTimeEqual', () => constantTimeEqual(detached(0), new Uint8Array(0))],
      ['gcm encrypt', () => gcm(key, n12).encrypt(detached())],
      ['gcm nonce', () => gcm(key, detached(12))],
      ['cbc encrypt', () => cbc(key, rnd(16)).encrypt(detached())],
      ['cmac', () => cmac(key, detached())],
      ['stream update', () => gcm(key, n12).encryptStream().update(detached())],
      ['HmacDrbg personalization', () => new HmacDrbg({ personalization: detached() })],
      ['HmacDrbg generate', () => new HmacDrbg().generate(8, detached())],
      ['HmacDrbg reseed', () => new HmacDrbg().reseed(detached())],
    ];
    for (const [what, call] of calls) expect(call, what).toThrow(/view of a detached ArrayBuffer/);
    expect(() => sha256(detached()), 'typed').toThrow(InvalidInputError);
  });
});

describe('nothing is left behind', () => {
  it('raw AES key bytes, a nonce or IV beside an empty message, and a MAC over nothing are not left in the I/O window', () => {
    const key = rnd(32);
    const calls: [string, () => unknown][] = [
      ['aesKey', () => aesKey(key).destroy()],
      ['gcm encrypt', () => gcm(key, rnd(12)).encrypt(rnd(20))],
      ['cmac', () => cmac(key, rnd(20))],
    ];
    for (const [what, call] of calls) {
      call();
      expect(found(key), what).toEqual([]);
    }
    // The window is wiped as far as its longest content: a nonce or IV beside an empty message too.
    for (const [what, nonce, call] of [
      ['gcm nonce', rnd(16), (n: Uint8Array) => gcm(key, n).encrypt(new Uint8Array(0))],
      ['cbc iv', rnd(16), (n: Uint8Array) => cbc(key, n).encrypt(new Uint8Array(0))],
    ] as const) {
      call(nonce);
      expect(found(nonce), what).toEqual([]);
    }
    // A MAC over no data wrote its tag to the output half all the same.
    expect(found(cmac(key, new Uint8Array(0))), 'the tag of a CMAC over nothing').toEqual([]);
  });

  it('hash and HMAC inputs and outputs do not stay in the I/O window', () => {
    const msg = rnd(48), key = rnd(32);
    // Checked after each call (a later call overwrites the start of the window), for the message's
    // tail too (a wipe of only the digest's length leaves it).
    const calls: [string, () => Uint8Array[]][] = [
      ['sha256', () => [sha256(msg)]],
      ['hash SHA-512', () => [hash('SHA-512', msg)]],
      ['hmac SHA-256', () => [hmac('SHA-256', key, msg)]],
      ['createHash SHA-384', () => [createHash('SHA-384').update(msg).digest()]],
      ['createHmac SHA-512', () => [createHmac('SHA-512', key).update(msg).digest()]],
      ['hashMany', () => hashMany('SHA-256', [msg, msg.subarray(1)])],
    ];
    for (const [what, call] of calls) {
      const results = call();
      expect(found(msg.subarray(32)), `${what}: the message`).toEqual([]);
      expect(found(key), `${what}: the key`).toEqual([]);
      for (const r of results) expect(found(r), `${what}: a digest or MAC`).toEqual([]);
    }
  });

  it('HmacDrbg: a failing nonce draw zeroizes the entropy copy; a refused input leaves no seed and no block', () => {
    const RealU8 = Uint8Array;
    const entropy = rnd(32);
    let calls = 0;
    const copies = arraysMade((from) => from === entropy || (from instanceof RealU8 && from.buffer === entropy.buffer) || (isFreshBuffer(from) && (from as ArrayBuffer).byteLength === 32), () => {
      expect(() => new HmacDrbg({ entropy: () => (++calls === 1 ? entropy : new RealU8(3)) })).toThrow(LengthError);
    });
    expect(copies.length, 'the DRBG took a private copy').toBeGreaterThan(0);
    for (const c of copies) expect(c.every((b) => b === 0), 'the copy is zeroized').toBe(true);

    // One byte more than the core's largest block: placing it fails after entropy and nonce were placed.
    const big = new RealU8(2 ** 28 + 1);
    const seed = new RealU8(32).fill(0xe5), nonce = new RealU8(16).fill(0xa7);
    let i = 0;
    const base = coreMemoryStats().inUseBytes;
    expect(() => new HmacDrbg({ entropy: () => (i++ === 1 ? nonce : seed).slice(), personalization: big })).toThrow(/out of WASM memory/);
    expect(coreMemoryStats().inUseBytes, 'no context or block held').toBe(base);
    expect(found(seed), 'entropy').toEqual([]);
    expect(found(nonce), 'nonce').toEqual([]);
    const d = new HmacDrbg({ entropy: () => new RealU8(32).fill(0x5e) });
    const held = coreMemoryStats().inUseBytes;
    expect(() => d.reseed(big)).toThrow(/out of WASM memory/);
    expect(coreMemoryStats().inUseBytes).toBe(held);
    expect(found(new RealU8(32).fill(0x5e)), 'reseed entropy').toEqual([]);
    d.destroy();
  });

  it('a Proxy given as an AES key, whose traps throw, is refused with an InvalidInputError, not the trap\'s own error', () => {
    const p = new Proxy({}, { getPrototypeOf: () => { throw new Error('trap'); }, get: () => { throw new Error('trap'); } });
    for (const [what, call] of [
      ['gcm', () => gcm(p as never, rnd(12))], ['ccm', () => ccm(p as never, rnd(13))], ['cbc', () => cbc(p as never, rnd(16))],
      ['cmac', () => cmac(p as never, rnd(16))], ['createCmac', () => createCmac(p as never)],
    ] as const) {
      expect(call, what).toThrow(InvalidInputError);
    }
  });

  it('a revoked Proxy given as bytes, a name or a list is a typed refusal, not the TypeError Array.isArray throws for it', () => {
    const revoked = () => {
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      return proxy as never;
    };
    const p256 = ecdsa('P-256');
    for (const [what, call, type] of [
      ['sha256', () => sha256(revoked()), InvalidInputError], ['hmac key', () => hmac('SHA-256', revoked(), rnd(3)), InvalidInputError],
      ['gcm key', () => gcm(revoked(), rnd(12)), InvalidInputError], ['gcm nonce', () => gcm(rnd(16), revoked()), InvalidInputError],
      ['aesKey', () => aesKey(revoked()), InvalidInputError], ['cmac', () => cmac(revoked(), rnd(16)), InvalidInputError],
      ['hashMany list', () => hashMany('SHA-256', revoked()), InvalidInputError], ['hashMany element', () => hashMany('SHA-256', [revoked()]), InvalidInputError],
      ['constantTimeEqual', () => constantTimeEqual(revoked(), rnd(3)), InvalidInputError], ['sign message', () => p256.sign(revoked(), p256.keygen().secretKey), InvalidInputError],
      ['hash name', () => hash(revoked(), rnd(3)), UnknownAlgorithmError], ['curve name', () => ecdsa(revoked()), UnknownAlgorithmError],
    ] as const) {
      expect(call, what).toThrow(type);
    }
    // As options, and a Proxy whose ownKeys trap throws: options that cannot be read, named as such.
    const trapped = new Proxy({}, { ownKeys: () => { throw new RangeError('trap'); } }) as never;
    for (const opts of [revoked(), trapped]) {
      for (const [name, call] of [['gcm options', () => gcm(rnd(16), rnd(12), undefined, opts)], ['HmacDrbg options', () => hmacDrbg(opts)], ['init options', () => initSync(opts)]] as const) {
        expect(call, name).toThrow(new InvalidInputError(`${name} cannot be read (${opts === trapped ? 'RangeError' : 'TypeError'})`));
      }
    }
  });

  it('seed material and a long HMAC key\'s digest are made outside the JS heap (secretBytes) and zeroized after use', () => {
    const RealU8 = Uint8Array;
    // A small array inside V8's heap is moved by a collection, which leaves its bytes where no zero-fill reaches.
    const onHeap = (lengths: number[]) => (from: unknown) => (typeof from === 'number' && lengths.includes(from)) || (from instanceof RealU8 && lengths.includes(from.length) && !(from.buffer instanceof ArrayBuffer && from.buffer.byteLength > 2 ** 16));
    const offHeap = (lengths: number[]) => (from: unknown) => isFreshBuffer(from) && lengths.includes((from as ArrayBuffer).byteLength);
    const source = rnd(32);
    const reseeded = [new HmacDrbg(), new HmacDrbg({ entropy: () => source })];
    // A reseed draws entropy input only; instantiation draws a nonce too.
    for (const [what, make, draws] of [
      ['the system source', () => new HmacDrbg().destroy(), 2],
      ['a caller\'s source', () => new HmacDrbg({ entropy: () => source }).destroy(), 2],
      ['a reseed from the system source', () => void reseeded[0]!.reseed(), 1],
      ['a reseed from a caller\'s source', () => void reseeded[1]!.reseed(), 1],
    ] as const) {
      expect(arraysMade(onHeap([16, 32]), make), `${what}: no seed array in the JS heap`).toEqual([]);
      const held = arraysMade(offHeap([16, 32]), make);
      expect(held.length, `${what}: seed material in secretBytes memory`).toBeGreaterThanOrEqual(draws);
      for (const h of held) expect(h.every((b) => b === 0), `${what}: zeroized`).toBe(true);
    }
    for (const d of reseeded) d.destroy();
    const key = new RealU8(core().ioSize + 1).fill(7);
    for (const [name, dl] of [['SHA-256', 32], ['SHA-512', 64]] as const) {
      let mac: Uint8Array = new RealU8(0);
      const slices = arraysMade((from) => from instanceof RealU8 && from.buffer === core().mem().buffer, () => (mac = hmac(name, key, rnd(40))));
      expect(slices.map((a) => a.length), `${name}: only the MAC is read out of the core`).toEqual([dl]);
      expect(slices[0], name).toBe(mac);
      const digests = arraysMade(offHeap([dl]), () => hmac(name, key, rnd(40)));
      expect(digests.length, `${name}: the key's digest in secretBytes memory`).toBeGreaterThan(0);
      for (const d of digests) expect(d.every((b) => b === 0), `${name}: the key's digest zeroized`).toBe(true);
    }
  });

  it('ECDSA\'s hedging entropy is made outside the JS heap (secretBytes) and zeroized once the signature is made', () => {
    for (const [curve, sb] of [['P-256', 32], ['P-521', 66]] as const) {
      const e = ecdsa(curve), { secretKey } = e.keygen(), digest = rnd(64);
      const sign = () => void e.sign(digest, secretKey, { prehashed: true, hash: 'SHA-512', format: 'raw' });
      expect(arraysMade((from) => from === sb, sign), `${curve}: no ${sb}-byte array in the JS heap`).toEqual([]);
      const held = arraysMade((from) => isFreshBuffer(from) && (from as ArrayBuffer).byteLength === sb, sign);
      expect(held.length, `${curve}: the hedge in secretBytes memory`).toBe(1);
      expect(held[0]!.every((b) => b === 0), `${curve}: zeroized`).toBe(true);
    }
  });

  it('plaintext and random bytes leave the core in secretBytes memory, never as a slice inside V8\'s heap', () => {
    const RealU8 = Uint8Array;
    const sliced = (call: () => unknown) => arraysMade((from) => from instanceof RealU8 && from.buffer === core().mem().buffer, call);
    const key = rnd(16), iv = rnd(16), nonce = rnd(12), n13 = rnd(13), plain = rnd(32);
    const sealedG = gcm(key, nonce).encrypt(plain), sealedC = ccm(key, n13).encrypt(plain);
    const cbcCt = cbc(key, iv).encrypt(plain), rawCt = cbc(key, iv, { padding: 'none' }).encrypt(plain);
    const calls: [string, () => Uint8Array][] = [
      ['GCM one-shot', () => gcm(key, nonce).decrypt(sealedG)],
      ['CCM one-shot', () => ccm(key, n13).decrypt(sealedC)],
      ['CBC one-shot', () => cbc(key, iv).decrypt(cbcCt)],
      ['GCM stream', () => gcm(key, nonce).decryptStream().update(sealedG).final()],
      ['CBC stream', () => {
        const d = cbc(key, iv, { padding: 'none' }).decryptStream();
        const parts = [d.update(rawCt.subarray(0, 20)), d.update(rawCt.subarray(20)), d.final()];
        return Uint8Array.from(parts.flatMap((p) => [...p]));
      }],
      ['randomBytes', () => randomBytes(32)],
      ['HmacDrbg', () => new HmacDrbg().generate(32)],
    ];
    for (const [what, call] of calls) {
      let out: Uint8Array = new RealU8(0);
      expect(sliced(() => (out = call())), what).toEqual([]);
      if (what !== 'randomBytes' && what !== 'HmacDrbg') expect(out, what).toEqual(plain);
    }
    // Ciphertext is no secret: it may be a slice.
    expect(sliced(() => gcm(key, nonce).encrypt(plain)).length).toBe(1);
  });

  it('randomBytes over 64 KiB zeroizes each piece it joined', () => {
    const pieces: Uint8Array[] = [];
    const generate = HmacDrbg.prototype.generate;
    HmacDrbg.prototype.generate = function (this: HmacDrbg, n: number, addin?: Uint8Array) {
      const out = generate.call(this, n, addin);
      pieces.push(out);
      return out;
    };
    try {
      expect(randomBytes(100_000).length).toBe(100_000);
    } finally {
      HmacDrbg.prototype.generate = generate;
    }
    expect(pieces.length).toBe(2);
    for (const p of pieces) expect(p.every((b) => b === 0)).toBe(true);
  });

  it('messages name the problem: a short CCM stream, a bigint option', () => {
    const key = rnd(16), nonce = rnd(13);
    const sealed = ccm(key, nonce, undefined, { messageLength: 5 }).encrypt(rnd(5));
    const d = ccm(key, nonce, undefined, { messageLength: 100 }).decryptStream();
    d.update(sealed);
    expect(() => d.final()).toThrow(/5 bytes of ciphertext before the tag, 100 declared/);
    expect(() => gcm(key, rnd(12), undefined, { tagLength: 16n as unknown as number })).toThrow(/got 16n/);
    // One beyond 32 bits may be a key passed by mistake: its size is named, never its digits.
    const big = 2n ** 32n + 1n;
    expect(() => gcm(key, rnd(12), undefined, { tagLength: (2n ** 32n) as unknown as number })).toThrow(/got 4294967296n/);
    expect(() => gcm(key, rnd(12), undefined, { tagLength: big as unknown as number })).toThrow(/got a bigint of more than 32 bits/);
    expect(() => gcm(key, rnd(12), undefined, { tagLength: -big as unknown as number })).toThrow(/got a bigint of more than 32 bits/);
  });

  it('a CCM stream with messageLength refuses a final() short of it and a chunk one byte beyond it, and goes on as if neither was made', () => {
    const key = rnd(16), nonce = rnd(13), pt = rnd(16);
    const mode = ccm(key, nonce, undefined, { messageLength: 16 });
    const sealed = mode.encrypt(pt);
    const e = mode.encryptStream();
    const head = e.update(pt.subarray(0, 10));
    expect(() => e.final()).toThrow(/^AES-CCM: 10 bytes of plaintext, 16 declared$/);
    const rest = e.update(pt.subarray(10));
    expect(hex(new Uint8Array([...head, ...rest, ...e.final()]))).toBe(hex(sealed));
    const d = mode.decryptStream();
    expect(() => d.update(new Uint8Array([...sealed, 0]))).toThrow(/^AES-CCM: more ciphertext than the declared messageLength of 16 plus the 16-byte tag$/);
    expect(hex(d.update(sealed).final())).toBe(hex(pt));
  });
});

describe('refusals name what was given', () => {
  it('an object that only inherits from Uint8Array.prototype is not called a Uint8Array', () => {
    expect(() => sha256(Object.create(Uint8Array.prototype) as Uint8Array)).toThrow(/data must be a Uint8Array, got object$/);
    expect(() => sha256(new Int16Array(2) as unknown as Uint8Array)).toThrow(/got Int16Array$/);
  });
  it('a Uint8ClampedArray is no Uint8Array: refused by name, not read', () => {
    expect(() => sha256(new Uint8ClampedArray(4) as unknown as Uint8Array)).toThrow(/data must be a Uint8Array, got Uint8ClampedArray$/);
    expect(() => hashMany('SHA-256', [new Uint8ClampedArray(4) as unknown as Uint8Array])).toThrow(/messages\[0\] must be a Uint8Array/);
  });
  it('a class name is shown only when it is a short identifier: a long or odd one is "object"', () => {
    const named = (name: string) => new ({ [name]: class {} } as Record<string, new () => object>)[name]!() as unknown as Uint8Array;
    expect(() => sha256(named('A'.repeat(40)))).toThrow(new RegExp(`got ${'A'.repeat(40)}$`));
    expect(() => sha256(named('A'.repeat(41)))).toThrow(/got object$/);
    expect(() => sha256(named('Uint8Array'))).toThrow(/got object$/);
    expect(() => sha256(named('00ff'))).toThrow(/got object$/);
  });
  it('an entropy source one byte short is refused by the facade, naming the input it fell short on', () => {
    // The core refuses these lengths too, but only as 'length not allowed'.
    for (const [short, what, n] of [[0, 'entropy input', 32], [1, 'nonce', 16]] as const) {
      let draw = 0;
      expect(() => new HmacDrbg({ entropy: (k) => rnd(draw++ === short ? k - 1 : k) }), what)
        .toThrow(new RegExp(`^entropy source returned ${n - 1} bytes of ${what}, at least ${n} required$`));
    }
    let armed = false;
    const d = new HmacDrbg({ entropy: (k) => rnd(armed ? k - 1 : k) });
    armed = true;
    expect(() => d.reseed()).toThrow(/^entropy source returned 31 bytes of entropy input, at least 32 required$/);
    d.destroy();
  });
  it('a function given as options is refused like any other non-object', () => {
    const key = rnd(16);
    expect(() => gcm(key, rnd(12), undefined, (() => ({ tagLength: 8 })) as never)).toThrow(/gcm options must be an object of options, got function$/);
    expect(() => cbc(key, rnd(16), Object.assign(() => {}, { padding: 'none' }) as never)).toThrow(InvalidInputError);
  });
});

describe('the I/O window after ECDSA, streaming MACs and AEAD streams', () => {
  it('holds none of what those calls wrote: digests, signatures, public keys, tags', async () => {
    const { ecdsa, createCmac, createCbcMac } = await import('../../src/index.ts');
    const p256 = ecdsa('P-256');
    const { secretKey, publicKey } = p256.keygen();
    const digest = rnd(32);
    const sig = p256.sign(digest, secretKey, { prehashed: true, format: 'raw' });
    expect(found(digest), 'a prehashed digest (the caller\'s message) after sign').toEqual([]);
    expect(found(sig.subarray(0, 32)), 'r after sign').toEqual([]);
    expect(p256.verify(sig, digest, publicKey, { prehashed: true, format: 'raw' })).toBe(true);
    expect(found(digest), 'after verify').toEqual([]);
    expect(found(publicKey.subarray(1, 33)), 'the public key after keygen and verify').toEqual([]);
    const key = rnd(16), data = rnd(32);
    const macs = [createCmac(key).update(data).digest(), createCbcMac(key).update(data).digest()];
    for (const m of macs) expect(found(m), 'a streamed MAC').toEqual([]);
    const n12 = rnd(12);
    const es = gcm(key, n12).encryptStream();
    es.update(data);
    const tag = es.final();
    expect(found(tag), 'a stream\'s tag').toEqual([]);
    const forged = new Uint8Array([...gcm(key, n12).encrypt(data)]);
    forged[forged.length - 1]! ^= 1;
    const ds = gcm(key, n12).decryptStream();
    ds.update(forged);
    expect(() => ds.final()).toThrow();
    expect(found(forged.subarray(-16)), 'the refused tag').toEqual([]);
    const iv = rnd(16), plain = rnd(40);
    const dc = cbc(key, iv).decryptStream();
    dc.update(cbc(key, iv).encrypt(plain));
    expect(hex(dc.final())).toBe(hex(plain.subarray(32)));
    expect(found(plain.subarray(32)), 'a CBC stream\'s last plaintext block, from final()').toEqual([]);
  });
});

describe('hashMany measures what it packs', () => {
  it('a list whose getter grows a length-tracking view is read whole before anything is measured', () => {
    const c = core();
    const live = createHash('SHA-256').update(new Uint8Array(3).fill(1));
    const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(8, { maxByteLength: 200_000 });
    const tracking = new Uint8Array(rab).fill(0x7e);
    let grown = false;
    // The list is read once, by index: reading element 1 grows element 0, which was read already.
    const list = new Proxy([tracking, new Uint8Array(5)], {
      get(t, p, r) {
        if (p === '1' && !grown) {
          grown = true;
          rab.resize(100_000);
          new Uint8Array(rab).fill(0x7e);
        }
        return Reflect.get(t, p, r) as unknown;
      },
    });
    const [d0] = hashMany('SHA-256', list);
    expect(grown, 'the getter ran').toBe(true);
    expect(hex(d0!), 'the digest of what the view held when it was measured').toBe(hex(sha256(new Uint8Array(rab))));
    expect(hex(live.digest()), 'a stream opened before is intact').toBe(hex(sha256(new Uint8Array(3).fill(1))));
    expect(c.mem().subarray(c.io, c.io + c.ioSize).some((b) => b === 0x7e), 'nothing left in the window').toBe(false);
  });

  it('wipes its offsets table with the messages: no message length stays in the window', () => {
    const c = core();
    c.x.zeroize(c.io, c.ioSize);
    hashMany('SHA-256', [rnd(5), rnd(7)]);
    expect(c.mem().subarray(c.io, c.io + c.ioSize).every((b) => b === 0)).toBe(true);
  });

  it('packs only what fits beside its offsets and digests: a message that would reach the first digest by 4 bytes goes in the next round', () => {
    const { ioSize } = core();
    // With the first message (10 bytes) packed, a second fits when 3 offsets, both messages and 2 digests fit in the window.
    const first = rnd(10);
    for (const n of [ioSize - 86, ioSize - 85, ioSize - 82]) {
      const second = rnd(n);
      const digests = hashMany('SHA-256', [first, second]);
      expect(digests.map(hex), `a second message of ioSize - ${ioSize - n} bytes`).toEqual([first, second].map((m) => nodeCrypto.createHash('sha256').update(m).digest('hex')));
    }
  });
});

describe('ECDSA P-521 leaves nothing in the I/O window', () => {
  it('not even the last byte of a 133-byte public key', async () => {
    const { ecdsa } = await import('../../src/index.ts');
    const c = core();
    for (let i = 0; i < 4; i++) {
      ecdsa('P-521').keygen();
      expect(c.mem().subarray(c.io, c.io + 4096).every((b) => b === 0)).toBe(true);
    }
  });
});

describe('hashMany reads its list by index', () => {
  it('a huge sparse list fails fast at its first hole; iterator overrides are not followed', () => {
    const sparse: Uint8Array[] = [];
    sparse.length = 2 ** 32 - 1;
    const t0 = performance.now();
    expect(() => hashMany('SHA-256', sparse)).toThrow(/messages\[0\] must be a Uint8Array, got undefined/);
    expect(performance.now() - t0, 'without walking the length').toBeLessThan(1000);
    const a = Uint8Array.of(1), b = Uint8Array.of(2);
    const list = [a, b];
    Object.defineProperty(list, Symbol.iterator, { value: function* () { yield b; } });
    const r = hashMany('SHA-256', list);
    expect(r.map(hex)).toEqual([hex(sha256(a)), hex(sha256(b))]);
  });
});

describe('hashMany takes the list length once, as it is', () => {
  it('a length that is no safe integer, or an object whose valueOf changes, is refused before anything is packed', () => {
    const a = new Uint8Array(40).fill(0x7e), b = new Uint8Array(12).fill(0x7d);
    let calls = 0;
    const changing = { valueOf: () => (++calls > 1 ? 1 : 2) };
    for (const length of [changing, 1.5, -1, '2']) {
      const list = new Proxy([a, b], { get: (t, p, r) => (p === 'length' ? length : Reflect.get(t, p, r)) });
      expect(() => hashMany('SHA-256', list), String(length)).toThrow(InvalidInputError);
    }
    const c = core();
    expect(c.mem().subarray(c.io, c.io + c.ioSize).some((x) => x === 0x7e || x === 0x7d)).toBe(false);
  });

  it('a list that is no array is refused, also one that looks like an array of messages', () => {
    const arrayLike = { length: 1, 0: Uint8Array.of(1) };
    for (const [what, list] of [['an array-like object', arrayLike], ['a message itself', Uint8Array.of(1, 2)], ['a string', 'ab'], ['undefined', undefined]] as const) {
      expect(() => hashMany('SHA-256', list as never), what).toThrow(new InvalidInputError('messages must be an array of Uint8Array'));
      expect(() => hashMany('SHA-256', list as never), what).toThrow(InvalidInputError);
    }
  });
});

describe('an AEAD stream\'s associated data', () => {
  it('is not left in the I/O window once the stream exists (a CCM context keeps its nonce for the counter blocks)', () => {
    const key = rnd(16), aad = rnd(48), n13 = rnd(13);
    for (const make of [() => gcm(key, rnd(12), aad).encryptStream(), () => gcm(key, n13, aad).decryptStream(),
      () => ccm(key, n13, aad, { messageLength: 10 }).decryptStream(), () => ccm(key, n13, aad, { messageLength: 10 }).encryptStream()]) {
      const s = make();
      expect(found(aad), 'associated data after the stream was created').toEqual([]);
      s.destroy();
      expect(found(aad), 'after destroy()').toEqual([]);
    }
  });
});

describe('no result is an array another call also returns', () => {
  it('empty results of streams are their own: transferring them breaks nothing (random numbers, keys, signatures)', async () => {
    const { ecdsa } = await import('../../src/index.ts');
    const key = rnd(16), n12 = rnd(12);
    const empties = [
      cbc(key, rnd(16)).encryptStream().update(rnd(10)),
      cbc(key, rnd(16)).encryptStream().update(rnd(10), new Uint8Array(32)),
      gcm(key, n12).encryptStream().update(new Uint8Array(0), new Uint8Array(16)),
      ccm(key, rnd(12)).encryptStream().update(rnd(20)),
      ccm(key, rnd(12)).encryptStream().update(rnd(20), new Uint8Array(64)),
      (() => {
        const d = gcm(key, n12).decryptStream();
        d.update(gcm(key, n12).encrypt(new Uint8Array(0)));
        return d.final(new Uint8Array(8));
      })(),
    ];
    for (const e of empties) expect(e.length).toBe(0);
    expect(new Set(empties).size, 'every empty result a distinct array').toBe(empties.length);
    for (const e of empties) structuredClone(e.buffer, { transfer: [e.buffer] });
    expect(randomBytes(16).length).toBe(16);
    expect(new HmacDrbg().generate(32).length).toBe(32);
    const p256 = ecdsa('P-256');
    const { secretKey, publicKey } = p256.keygen();
    const m = rnd(40);
    expect(p256.verify(p256.sign(m, secretKey, { extraEntropy: false }), m, publicKey)).toBe(true);
  });
});

describe('options are what they say or refused', () => {
  it('an options argument that is no object, or a flag that is no boolean, is an InvalidInputError, not read as none or as truthy', async () => {
    const { ecdsa, init } = await import('../../src/index.ts');
    const key = rnd(16);
    const p256 = ecdsa('P-256');
    const { secretKey } = p256.keygen();
    const bad: [string, () => unknown, RegExp][] = [
      ['cbc padding as a string', () => cbc(key, rnd(16), 'none' as never), /cbc options must be an object/],
      ['gcm tag length as a number', () => gcm(key, rnd(12), undefined, 8 as never), /gcm options/],
      ['ccm tag length as a number', () => ccm(key, rnd(12), undefined, 8 as never), /ccm options/],
      ['HmacDrbg options as a string', () => new HmacDrbg('SHA-512' as never), /HmacDrbg options/],
      ['sign options as a string', () => p256.sign(rnd(32), secretKey, 'raw' as never), /sign options/],
      ['prehashed as a string', () => p256.sign(rnd(32), secretKey, { prehashed: 'false' as never }), /prehashed must be true or false/],
      ['prehashed as 1', () => p256.verify(new Uint8Array(64), rnd(32), p256.getPublicKey(secretKey), { prehashed: 1 as never, format: 'raw' }), /prehashed/],
      ['compressed as a string', () => p256.getPublicKey(secretKey, 'false' as never), /compressed must be true or false/],
      ['predictionResistance as 1', () => new HmacDrbg({ predictionResistance: 1 as never }), /predictionResistance/],
      ['gcm options as an array', () => gcm(key, rnd(12), undefined, [] as never), /gcm options must be an object of options, got array/],
      ['sign options as an array', () => p256.sign(rnd(32), secretKey, [] as never), /sign options must be an object of options, got array/],
    ];
    for (const [what, call, message] of bad) expect(call, what).toThrow(InvalidInputError), expect(call, what).toThrow(message);
    await expect(init('scalar' as never)).rejects.toThrow(/init options/);
    // null is "absent" for every option alike.
    expect(ccm(key, rnd(12), undefined, { tagLength: null as never, messageLength: null as never }).tagLength).toBe(16);
    expect(cbc(key, rnd(16), null).encrypt(rnd(16)).length).toBe(32);
    expect(p256.getPublicKey(secretKey, null as never).length).toBe(65);
    expect(new HmacDrbg({ reseedInterval: null as never }).generate(4).length).toBe(4);
  });
});

// Caller code that runs inside a call (an entropy source, an options getter)
// may detach or shrink a buffer the call has already checked: a typed error,
// never a TypeError from copying a view that lost its bytes.
describe('a buffer that loses its bytes during the call', () => {
  it('is an InvalidInputError in HmacDrbg and ECDSA, and changes nothing', async () => {
    const { ecdsa } = await import('../../src/index.ts');
    const p256 = ecdsa('P-256');
    const { secretKey, publicKey } = p256.keygen();
    type Resizable = ArrayBuffer & { resize(n: number): void };
    // An entropy source is called more than once (entropy input, then nonce): transfer a buffer only
    // while it still has bytes. Node 20 transfers a detached buffer again in silence; Node 22+ throws
    // a DataCloneError, which would end the call before senv sees the loss.
    const detach = (b: ArrayBufferLike) => b.byteLength > 0 && structuredClone(b, { transfer: [b as ArrayBuffer] });
    const detaching = (view: Uint8Array) => (n: number) => (detach(view.buffer), rnd(n));
    const shrinking = (view: Uint8Array) => (n: number) => ((view.buffer as Resizable).resize(0), rnd(n));
    const resizable = (n: number) => new Uint8Array(new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Resizable)(n, { maxByteLength: n }), 0, n);
    // Each case sets up (generators are made before memory is measured), then returns the call.
    const cases: [string, (view: Uint8Array, lose: typeof detaching) => () => unknown][] = [
      ['HmacDrbg personalization', (v, lose) => () => new HmacDrbg({ personalization: v, entropy: lose(v) })],
      ['HmacDrbg reseed additionalInput', (v, lose) => {
        let armed = false;
        const d = new HmacDrbg({ entropy: (n) => (armed ? lose(v)(n) : rnd(n)) });
        armed = true;
        return () => d.reseed(v);
      }],
      ['HmacDrbg generate additionalInput (prediction resistance)', (v, lose) => {
        let armed = false;
        const d = new HmacDrbg({ predictionResistance: true, entropy: (n) => (armed ? lose(v)(n) : rnd(n)) });
        armed = true;
        return () => d.generate(8, v);
      }],
      ['ECDSA sign secret key', (v, lose) => (v.set(secretKey), () => p256.sign(rnd(32), v, { get format() { lose(v)(0); return 'raw' as const; } }))],
      ['ECDSA sign prehashed digest', (v, lose) => () => p256.sign(v, secretKey, { prehashed: true, get format() { lose(v)(0); return 'raw' as const; } })],
      ['ECDSA verify public key', (v, lose) => (v.set(publicKey), () => p256.verify(new Uint8Array(64), rnd(32), v, { format: 'raw', get hash() { lose(v)(0); return 'SHA-256' as const; } }))],
    ];
    for (const [what, setup] of cases) {
      for (const [how, lose] of [['detached', detaching], ['shrunk', shrinking]] as const) {
        const view = how === 'shrunk' ? resizable(what.includes('public key') ? 65 : 32) : rnd(what.includes('public key') ? 65 : 32);
        const call = setup(view, lose);
        const base = coreMemoryStats().inUseBytes;
        let error: unknown;
        try {
          call();
        } catch (e) {
          error = e;
        }
        expect(error, `${what}, ${how}`).toBeInstanceOf(InvalidInputError);
        expect(coreMemoryStats().inUseBytes, `${what}, ${how}: memory`).toBe(base);
      }
    }
  });
});

describe('a failed decryption or a collecting CCM stream leaves no plaintext in the arrays it filled', () => {
  // Made by length, or over an ArrayBuffer of that length (secretBytes: memory outside the JS heap).
  const arraysOfLength = (lengths: number[], call: () => void) =>
    arraysMade((from) => (typeof from === 'number' && lengths.includes(from)) || (isFreshBuffer(from) && lengths.includes((from as ArrayBuffer).byteLength)), call);
  const zero = (a: Uint8Array) => a.every((b) => b === 0);

  it('one-shot CBC of more than CHUNK bytes with bad padding zeroizes the plaintext written before the padding check', () => {
    const key = rnd(16), iv = rnd(16), n = CHUNK + 16 * 40;
    // Its last byte 0 is no PKCS#7 padding; the rest is plaintext a missing wipe would leave.
    const plain = new Uint8Array(n).fill(0x41);
    plain[n - 1] = 0;
    const ct = cbc(key, iv, { padding: 'none' }).encrypt(plain);
    const outs = arraysOfLength([n + 16], () => expect(() => cbc(key, iv).decrypt(ct)).toThrow(PaddingError));
    expect(outs.length, 'the output array was seen').toBeGreaterThan(0);
    for (const o of outs) expect(zero(o), 'the partial plaintext is zeroized').toBe(true);
  });

  it('one-shot GCM and CCM of more than CHUNK bytes that fail authentication zeroize the unverified plaintext', () => {
    const key = rnd(16), n = CHUNK + 1000;
    for (const [what, mode] of [['GCM', gcm(key, rnd(12))], ['CCM', ccm(key, rnd(12))]] as const) {
      const sealed = mode.encrypt(new Uint8Array(n).fill(0x41));
      sealed[sealed.length - 1]! ^= 1;
      const outs = arraysOfLength([n], () => expect(() => mode.decrypt(sealed), what).toThrow(AuthenticationError));
      expect(outs.length, `${what}: the output array was seen`).toBeGreaterThan(0);
      for (const o of outs) expect(zero(o), `${what}: the unverified plaintext is zeroized`).toBe(true);
    }
  });

  it('a CCM stream without messageLength zeroizes its joined input after final(), also when the tag is wrong', () => {
    const key = rnd(16), nonce = rnd(12), n = 1037;
    const plain = new Uint8Array(n).fill(0x41);
    const sealed = ccm(key, nonce).encrypt(plain);
    // The join is as long as all input: n bytes of plaintext, or n + 16 of ciphertext and tag.
    const cases: [string, number, () => void][] = [
      ['encryption', n, () => {
        const s = ccm(key, nonce).encryptStream();
        s.update(plain.subarray(0, 500));
        s.update(plain.subarray(500));
        expect(hex(s.final())).toBe(hex(sealed));
      }],
      ['decryption', n + 16, () => {
        const d = ccm(key, nonce).decryptStream();
        d.update(sealed.subarray(0, 700)).update(sealed.subarray(700));
        expect(hex(d.final())).toBe(hex(plain));
      }],
      ['decryption with a wrong tag', n + 16, () => {
        const forged = sealed.slice();
        forged[forged.length - 1]! ^= 1;
        const d = ccm(key, nonce).decryptStream();
        d.update(forged.subarray(0, 700)).update(forged.subarray(700));
        expect(() => d.final()).toThrow(AuthenticationError);
      }],
    ];
    for (const [what, length, run] of cases) {
      const joins = arraysOfLength([length], run);
      expect(joins.length, `${what}: the join was seen`).toBeGreaterThan(0);
      for (const j of joins) expect(zero(j), `${what}: the join is zeroized`).toBe(true);
    }
  });
});

describe('what a decryption stream holds until its tag verified', () => {
  const secretArrays = (call: () => void) => arraysMade(isFreshBuffer, call);
  const perChunkArrays = (call: () => void) => arraysMade((from) => from === 1, call);

  it('is one buffer outside the JS heap that grows by doubling, zeroized when the tag fails: not an array per chunk', () => {
    const key = rnd(16), nonce = rnd(12), n = 4096;
    const forged = gcm(key, nonce).encrypt(new Uint8Array(n).fill(0x41));
    forged[n]! ^= 1;
    for (const [what, open] of [
      ['GCM', () => gcm(key, nonce).decryptStream()],
      ['CCM without messageLength', () => ccm(key, nonce).decryptStream()],
      ['CCM with messageLength', () => ccm(key, nonce, undefined, { messageLength: n }).decryptStream()],
    ] as const) {
      const sealed = what === 'GCM' ? forged : ccm(key, nonce).encrypt(new Uint8Array(n).fill(0x41));
      if (what !== 'GCM') sealed[n]! ^= 1;
      let held: Uint8Array[] = [];
      const small = perChunkArrays(() => {
        held = secretArrays(() => {
          const d = open();
          for (let i = 0; i < sealed.length; i++) d.update(sealed.subarray(i, i + 1));
          expect(() => d.final(), what).toThrow(AuthenticationError);
        });
      });
      expect(small.length, `${what}: no array per one-byte chunk`).toBeLessThan(8);
      expect(held.length, `${what}: the held bytes are in secretBytes memory`).toBeGreaterThan(0);
      expect(held.length, `${what}: grown by doubling`).toBeLessThan(20);
      for (const h of held) expect(h.every((b) => b === 0), `${what}: zeroized`).toBe(true);
    }
  });

  it('final(into) leaves the verified plaintext in into alone: the buffer that held it is zeroized', () => {
    const key = rnd(16), nonce = rnd(12), plain = rnd(4096);
    for (const [what, seal, open] of [
      ['GCM', () => gcm(key, nonce).encrypt(plain), () => gcm(key, nonce).decryptStream()],
      ['CCM', () => ccm(key, nonce).encrypt(plain), () => ccm(key, nonce).decryptStream()],
    ] as const) {
      const sealed = seal(), into = new Uint8Array(plain.length);
      const held = secretArrays(() => void open().update(sealed).final(into));
      expect(hex(into), what).toBe(hex(plain));
      expect(held.length, `${what}: the held bytes are in secretBytes memory`).toBeGreaterThan(0);
      for (const h of held) expect(h.every((b) => b === 0), `${what}: zeroized`).toBe(true);
    }
  });

  it('a final() refused for too little input leaves the stream usable, as a refused update() does', () => {
    const key = rnd(16), nonce = rnd(12), plain = rnd(40);
    const sealed = gcm(key, nonce).encrypt(plain);
    const g = gcm(key, nonce).decryptStream().update(sealed.subarray(0, 10));
    expect(() => g.final()).toThrow(LengthError);
    expect(hex(g.update(sealed.subarray(10)).final())).toBe(hex(plain));
    const sealedC = ccm(key, nonce, undefined, { messageLength: 40 }).encrypt(plain);
    const c = ccm(key, nonce, undefined, { messageLength: 40 }).decryptStream().update(sealedC.subarray(0, 30));
    expect(() => c.final()).toThrow(LengthError);
    expect(hex(c.update(sealedC.subarray(30)).final())).toBe(hex(plain));
  });
});

describe('a CBC padding is a string', () => {
  it('a String object or a value whose string changes is refused, not read one way by the facade and another by the core', () => {
    const key = rnd(16), iv = rnd(16);
    let calls = 0;
    const shifty = { toString: () => (calls++ === 0 ? 'none' : '__proto__') };
    for (const padding of [new String('none'), shifty, ['none']]) {
      expect(() => cbc(key, iv, { padding: padding as never }), String(padding)).toThrow(UnknownAlgorithmError);
    }
    expect(cbc(key, iv, { padding: 'none' }).decrypt(new Uint8Array(0)).length, "'none' itself").toBe(0);
  });
});

describe('streaming objects have no property that reaches the core', () => {
  it('no own property of AEAD, CBC, CMAC, hash and HMAC streams holds an object (only lengths): the mode, core and handle are ES private', () => {
    const key = rnd(16), nonce = rnd(12);
    const streams = [
      gcm(key, nonce).encryptStream(), gcm(key, nonce).decryptStream(),
      ccm(key, nonce).encryptStream(), ccm(key, nonce).decryptStream(),
      ccm(key, nonce, undefined, { messageLength: 4 }).encryptStream(), ccm(key, nonce, undefined, { messageLength: 4 }).decryptStream(),
      cbc(key, rnd(16)).encryptStream(), cbc(key, rnd(16)).decryptStream(),
      createCmac(key), createHash('SHA-256'), createHmac('SHA-256', key),
    ];
    for (const s of streams) {
      const held = Reflect.ownKeys(s).filter((k) => typeof (s as unknown as Record<PropertyKey, unknown>)[k] !== 'number');
      expect(held, s.constructor.name).toEqual([]);
      (s as { destroy(): void }).destroy();
    }
  });

  it('a property planted on a decryption stream changes nothing: a forged message is still refused', () => {
    const key = rnd(16), nonce = rnd(12);
    const forged = gcm(key, nonce).encrypt(rnd(32));
    forged[40]! ^= 1;
    const d = gcm(key, nonce).decryptStream();
    Object.assign(d, { mode: { name: 'x', tagLength: 16, needsLength: false, verify: () => 0, update: () => 0, final: () => 0 } });
    expect(() => d.update(forged).final()).toThrow(AuthenticationError);
  });
});

describe('behaviour pinned by mutation testing (core facade)', () => {
  it('HMAC of a short key and data that fill the I/O window exactly uses the key as it is (RFC 2104 hashes only a key longer than the block)', () => {
    const key = rnd(32), data = rnd(core().ioSize - 32);
    expect(hex(hmac('SHA-256', key, data))).toBe(nodeCrypto.createHmac('sha256', key).update(data).digest('hex'));
  });

  it('randomBytes reseeds its shared generator from the runtime every 4096 requests', () => {
    const real = globalThis.crypto.getRandomValues.bind(globalThis.crypto);
    let draws = 0;
    globalThis.crypto.getRandomValues = (<T extends ArrayBufferView | null>(a: T): T => {
      draws++;
      return real(a as never) as T;
    }) as typeof globalThis.crypto.getRandomValues;
    try {
      for (let i = 0; i <= 4096; i++) randomBytes(1);
    } finally {
      globalThis.crypto.getRandomValues = real;
    }
    expect(draws, 'fresh entropy within 4097 requests').toBeGreaterThan(0);
  });

  it('randomBytes draws from a generator in the loaded core: another build gets its own, and the one it replaces is destroyed at once', () => {
    const before = core(), build = before.info.build;
    const used: HmacDrbg[] = [];
    const generate = HmacDrbg.prototype.generate;
    HmacDrbg.prototype.generate = function (this: HmacDrbg, n: number, addin?: Uint8Array) {
      used.push(this);
      return generate.call(this, n, addin);
    };
    let after = before;
    try {
      randomBytes(1);
      initSync({ build: build === 'scalar' ? 'simd' : 'scalar' });
      after = core();
      randomBytes(1);
    } finally {
      HmacDrbg.prototype.generate = generate;
      initSync({ build });
    }
    expect(after, 'another build loaded').not.toBe(before);
    const [first, second] = used;
    expect(coreOf(first!), 'the first generator').toBe(before);
    expect(coreOf(second!), 'the generator after the switch lives in the core now loaded').toBe(after);
    expect(() => first!.generate(1), 'the replaced generator').toThrow(/^HMAC_DRBG already finished or destroyed$/);
  });

  it('constantTimeEqual: a prefix is not equal, either way round; inputs up to the whole window leave live contexts intact', () => {
    const x = rnd(16);
    const longer = new Uint8Array([...x, 0]);
    expect(constantTimeEqual(x, longer)).toBe(false);
    expect(constantTimeEqual(longer, x)).toBe(false);
    // Between half and all of the I/O window the two inputs no longer fit side by side in it.
    const key = rnd(32), msg = rnd(100);
    const h = createHmac('SHA-256', key).update(msg.subarray(0, 50));
    const big = rnd(48 * 1024);
    expect(constantTimeEqual(big, Uint8Array.from(big))).toBe(true);
    expect(hex(h.update(msg.subarray(50)).digest())).toBe(hex(hmac('SHA-256', key, msg)));
    // Neither input stays in the I/O window: one of them may be the MAC a verifier computed.
    const mac = rnd(32);
    expect(constantTimeEqual(mac, Uint8Array.from(mac))).toBe(true);
    expect(found(mac), 'a compared MAC').toEqual([]);
  });

  it('a createHmac context is released by digest(), and each hash states its block length', () => {
    const base = coreMemoryStats().inUseBytes;
    createHmac('SHA-512', rnd(32)).update(rnd(10)).digest();
    expect(coreMemoryStats().inUseBytes).toBe(base);
    const blocks = { 'SHA-256': 64, 'SHA-384': 128, 'SHA-512': 128 } as const;
    for (const [name, blockLen] of Object.entries(blocks) as [keyof typeof blocks, number][]) {
      expect(createHash(name).blockLen, name).toBe(blockLen);
      expect(createHmac(name, rnd(8)).blockLen, `HMAC ${name}`).toBe(blockLen);
    }
  });
});

describe('a failing known answer', () => {
  it('fails the self test, and the software SE refuses to open on it', async () => {
    const first = KNOWN_ANSWERS[0]!;
    const expected = first.expected;
    first.expected = expected.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    try {
      const r = selftest();
      expect(r.ok).toBe(false);
      expect(r.results.filter((t) => !t.ok)).toEqual([{ name: first.name, ok: false, error: 'wrong answer' }]);
      const se = new SoftwareBackend();
      const failed = await se.open().then(() => undefined, (e: unknown) => e);
      expect(failed).toBeInstanceOf(CoreError);
      expect(failed).toMatchObject({ name: 'SelfTestError', kind: 'ERR_CORE self test', message: expect.stringContaining(`self test failed: ${first.name}`) });
      await expect(se.random(1, 8)).rejects.toBeInstanceOf(StateError);
    } finally {
      first.expected = expected;
    }
    expect(selftest().ok).toBe(true);
  });
});

// Found by calling the one-shot and streaming forms side by side with the same wrong arguments.
describe('the one-shot and streaming forms refuse alike', () => {
  it('a CBC stream final() refused for its length (a partial block, no ciphertext) leaves the stream usable, as the AEAD streams and createCbcMac do', () => {
    const key = rnd(16), iv = rnd(16), plain = rnd(40);
    for (const padding of ['none', 'pkcs5', 'iso9797-m1', 'iso9797-m2'] as const) {
      const c = cbc(key, iv, { padding });
      const msg = padding === 'none' ? plain.subarray(0, 32) : plain;
      const sealed = c.encrypt(msg);
      // Decryption: nothing yet, then part of a block; each final() the one-shot decrypt's refusal, the stream going on.
      const d = c.decryptStream();
      const parts: Uint8Array[] = [];
      if (padding !== 'none') expect(() => d.final(), `${padding}: empty`).toThrow(new LengthError('AES-CBC: ciphertext length must be a non-zero multiple of 16 bytes'));
      parts.push(d.update(sealed.subarray(0, 20)));
      expect(() => d.final(), `${padding}: 20 bytes`).toThrow(captured(() => c.decrypt(sealed.subarray(0, 20))));
      parts.push(d.update(sealed.subarray(20)), d.final());
      expect(hex(concat(parts)), padding).toBe(hex(c.decrypt(sealed)));
      if (padding !== 'none') continue;
      // Encryption without padding: a partial block refused as the one-shot call refuses it, then completed.
      const e = c.encryptStream();
      const out = [e.update(msg.subarray(0, 20))];
      expect(() => e.final()).toThrow(captured(() => c.encrypt(msg.subarray(0, 20))));
      out.push(e.update(msg.subarray(20)), e.final());
      expect(hex(concat(out))).toBe(hex(sealed));
    }
  });
});

describe('a wrong argument to a finished stream', () => {
  it('is named before the state, by every stream alike: hash, HMAC, MACs, AEAD (GCM, CCM streaming or collecting) and CBC', () => {
    const key = rnd(16);
    const finished = <T extends { destroy(): void }>(s: T): T => (s.destroy(), s);
    const calls: [string, () => unknown, string][] = [
      ['createHash', () => finished(createHash('SHA-256')).update('x' as never), 'data must be a Uint8Array, got string'],
      ['createHmac', () => finished(createHmac('SHA-256', key)).update('x' as never), 'data must be a Uint8Array, got string'],
      ['createCmac', () => finished(createCmac(key)).update('x' as never), 'data must be a Uint8Array, got string'],
      ['gcm encryptStream into', () => finished(gcm(key, rnd(12)).encryptStream()).update(rnd(4), 'x' as never), 'into must be a Uint8Array, got string'],
      ['ccm encryptStream into', () => finished(ccm(key, rnd(12)).encryptStream()).update(rnd(4), 'x' as never), 'into must be a Uint8Array, got string'],
      ['ccm messageLength encryptStream into', () => finished(ccm(key, rnd(12), undefined, { messageLength: 4 }).encryptStream()).update(rnd(4), 'x' as never), 'into must be a Uint8Array, got string'],
      ['cbc encryptStream into', () => finished(cbc(key, rnd(16)).encryptStream()).update(rnd(4), 'x' as never), 'into must be a Uint8Array, got string'],
      ['cbc decryptStream into', () => finished(cbc(key, rnd(16)).decryptStream()).update(rnd(16), new DataView(new ArrayBuffer(32)) as never), 'into must be a Uint8Array, got DataView'],
      ['gcm decryptStream into', () => finished(gcm(key, rnd(12)).decryptStream()).final('x' as never), 'into must be a Uint8Array, got string'],
    ];
    for (const [what, call, message] of calls) expect(call, what).toThrow(new InvalidInputError(message));
    // A CCM stream with messageLength refuses a bad `into` before a chunk beyond it, as without one.
    const s = ccm(key, rnd(12), undefined, { messageLength: 4 }).encryptStream();
    expect(() => s.update(rnd(5), 'x' as never)).toThrow(new InvalidInputError('into must be a Uint8Array, got string'));
    expect(s.update(rnd(4)).length).toBe(4);
  });
});

describe('binary data is no object of options', () => {
  it('bytes, a DataView or an ArrayBuffer where options go (AAD to cbc(), a personalization to hmacDrbg(), extra entropy to sign()) are refused, not read as no options', () => {
    const key = rnd(16), p256 = ecdsa('P-256'), { secretKey, publicKey } = p256.keygen();
    // A Buffer is named by its typed-array slot, as every message names one.
    const binary: [string, object][] = [['Uint8Array', rnd(16)], ['Uint8Array', Buffer.from(rnd(4))], ['DataView', new DataView(new ArrayBuffer(4))], ['ArrayBuffer', new ArrayBuffer(4)], ['Uint32Array', new Uint32Array(1)]];
    for (const [type, opts] of binary) {
      const calls: [string, () => unknown][] = [
        ['cbc options', () => cbc(key, rnd(16), opts as never)],
        ['gcm options', () => gcm(key, rnd(12), undefined, opts as never)],
        ['ccm options', () => ccm(key, rnd(12), undefined, opts as never)],
        ['HmacDrbg options', () => new HmacDrbg(opts as never)],
        ['sign options', () => p256.sign(rnd(32), secretKey, opts as never)],
        ['verify options', () => p256.verify(rnd(64), rnd(32), publicKey, opts as never)],
      ];
      for (const [name, call] of calls) expect(call, `${name}: ${type}`).toThrow(new InvalidInputError(`${name} must be an object of options, got ${type}`));
    }
    // A Proxy (whose traps would throw) and an object inheriting from a typed array's prototype are objects, as before.
    expect(cbc(key, rnd(16), Object.create(Uint8Array.prototype) as never).encrypt(rnd(16)).length).toBe(32);
    const trap = () => { throw new Error('trap'); };
    expect(() => cbc(key, rnd(16), new Proxy({}, { getPrototypeOf: trap, get: () => undefined }) as never)).not.toThrow();
  });
});

describe('an option name the function does not know', () => {
  it('is refused by every options argument of the core, named, with the names it knows: a misspelt option is not left at its default', async () => {
    const key = rnd(16), p256 = ecdsa('P-256'), { secretKey, publicKey } = p256.keygen();
    const calls: [string, string, (opts: object) => unknown][] = [
      ['gcm options', 'tagLength', (o) => gcm(key, rnd(12), undefined, o as never).encrypt(rnd(3))],
      ['ccm options', 'tagLength, messageLength', (o) => ccm(key, rnd(12), undefined, o as never).encrypt(rnd(3))],
      ['cbc options', 'padding', (o) => cbc(key, rnd(16), o as never).encrypt(rnd(3))],
      ['HmacDrbg options', 'hash, personalization, predictionResistance, reseedInterval, entropy', (o) => hmacDrbg(o as never).generate(4)],
      ['sign options', 'hash, format, prehashed, extraEntropy', (o) => p256.sign(rnd(32), secretKey, o as never)],
      ['verify options', 'hash, format, prehashed', (o) => p256.verify(rnd(64), rnd(32), publicKey, o as never)],
      ['init options', 'build, module', (o) => initSync(o as never)],
    ];
    for (const [name, known, call] of calls) {
      // Each call works with its known names (all given as undefined) and no others.
      const none = Object.fromEntries(known.split(', ').map((k) => [k, undefined]));
      expect(() => call(none), name).not.toThrow();
      for (const [options, shownAs] of [[{ ...none, tagLenght: 8 }, "'tagLenght'"], [{ 'not a name': 1 }, 'named by a string of 10 characters']] as const) {
        expect(() => call(options), name).toThrow(new InvalidInputError(`unknown option ${shownAs} in ${name} (known: ${known})`));
      }
    }
    // Verification has no nonce to hedge: extraEntropy there is a mistake, not an option.
    expect(() => p256.verify(rnd(64), rnd(32), publicKey, { extraEntropy: true } as never)).toThrow(/unknown option 'extraEntropy' in verify options/);
    await expect(init({ biuld: 'scalar' } as never)).rejects.toThrow(/unknown option 'biuld' in init options/);
    // Names are the object's own: symbols and what it inherits are not options (as Object.keys reads them).
    expect(gcm(key, rnd(12), undefined, Object.assign(Object.create({ stray: 1 }), { [Symbol('x')]: 1, tagLength: 12 })).encrypt(rnd(3)).length).toBe(15);
  });
});

/** What `call` threw (for toThrow, which compares class and message). */
function captured(call: () => unknown): Error {
  try {
    call();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal');
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), (o += p.length);
  return out;
}
