// Bad input to the hash, HMAC and AES API: typed errors that name the problem.
import * as senv from '../../src/index.ts';
import { sha256, createHash, createHmac, hmac, hashMany, gcm, InvalidInputError, UnknownAlgorithmError, StateError, type HashName } from '../../src/index.ts';
import { type PortableCase, equal, hex, ok, throws } from './harness.ts';

export const errorCases: PortableCase[] = [
  {
    name: 'every exported error class names itself on its prototype (a minifier renames classes, not err.name)',
    run() {
      const classes = Object.entries(senv).filter(([, v]) => typeof v === 'function' && (v === senv.SenvError || v.prototype instanceof senv.SenvError));
      equal(classes.length >= 13, true, `error classes exported: ${classes.map(([k]) => k).join(', ')}`);
      for (const [exported, cls] of classes) {
        const proto = (cls as { prototype: Error }).prototype;
        equal(Object.hasOwn(proto, 'name') ? proto.name : '(inherited)', exported, `${exported}.prototype.name`);
      }
      const e = new senv.McsError(4000, 'bad');
      equal(`${e.name} ${String(e).split(':')[0]} ${Object.hasOwn(e, 'name')}`, 'McsError McsError false', 'an instance reads it from its class');
    },
  },
  {
    name: 'non-Uint8Array data is an InvalidInputError',
    run() {
      for (const bad of ['abc', 42, null, undefined, [1, 2], new Uint16Array(2), {}]) {
        throws(() => sha256(bad as unknown as Uint8Array), InvalidInputError, `sha256(${String(bad)})`, /data must be a Uint8Array/);
        throws(() => createHash('SHA-256').update(bad as unknown as Uint8Array), InvalidInputError, 'update');
        throws(() => hmac('SHA-256', bad as unknown as Uint8Array, new Uint8Array(1)), InvalidInputError, 'hmac key', /key must be a Uint8Array/);
        throws(() => hashMany('SHA-256', [new Uint8Array(1), bad as unknown as Uint8Array]), InvalidInputError, 'hashMany', /messages\[1\]/);
      }
      // Objects that claim another type: neither taken for bytes nor quoted in the message.
      const spoofed = new Uint16Array([0x102, 0x304]);
      Object.defineProperty(spoofed, 'constructor', { value: { name: 'Uint8Array' } });
      throws(() => sha256(spoofed as unknown as Uint8Array), InvalidInputError, 'a Uint16Array named Uint8Array', /got Uint16Array/);
      const loud = JSON.parse(`{"constructor":{"name":"<b>${'x'.repeat(5000)}</b>"}}`) as unknown as Uint8Array;
      const e = throws(() => sha256(loud), InvalidInputError, 'a JSON object with a constructor name');
      if (e.message.length > 80 || e.message.includes('<b>')) throw new Error(`message quotes the value: ${e.message.slice(0, 100)}`);
      throws(() => sha256(new Proxy({}, { get() { throw new Error('trap'); } }) as unknown as Uint8Array), InvalidInputError, 'a throwing proxy', /got object/);
    },
  },
  {
    name: 'byte arguments are read through their typed-array slots: lying lengths, detached views, look-alikes',
    run() {
      const real = new Uint8Array([1, 2, 3, 4]);
      const expected = hex(sha256(real));
      class Liar extends Uint8Array {
        override get length(): number {
          return 4096;
        }
      }
      const own = new Uint8Array([1, 2, 3, 4]);
      Object.defineProperty(own, 'length', { value: 4096 });
      for (const [what, v] of [['a subclass', new Liar([1, 2, 3, 4])], ['an own length', own]] as const) {
        equal(hex(sha256(v)), expected, `${what}: the real four bytes are hashed`);
        equal(hex(hashMany('SHA-256', [v, real])[0]!), expected, `${what}: hashMany`);
        equal(hex(gcm(new Uint8Array(16), new Uint8Array(12)).encrypt(v)), hex(gcm(new Uint8Array(16), new Uint8Array(12)).encrypt(real)), `${what}: GCM`);
      }
      const gone = new Uint8Array(8);
      structuredClone(gone.buffer, { transfer: [gone.buffer] });
      throws(() => sha256(gone), InvalidInputError, 'a detached view', /data is a view of a detached ArrayBuffer/);
      throws(() => hashMany('SHA-256', [real, gone]), InvalidInputError, 'a detached view in hashMany', /messages\[1\] is a view of a detached ArrayBuffer/);
      throws(() => gcm(new Uint8Array(16), gone), InvalidInputError, 'a detached nonce', /nonce is a view of a detached ArrayBuffer/);
      // A fixed-length view its resizable buffer shrank below reads as empty: refused, not hashed as no data.
      const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(16, { maxByteLength: 32 });
      const shrunk = new Uint8Array(rab, 8, 8);
      rab.resize(4);
      throws(() => sha256(shrunk), InvalidInputError, 'a view past its shrunk buffer', /^data is a view past the end of its resized ArrayBuffer$/);
      throws(() => hashMany('SHA-256', [real, shrunk]), InvalidInputError, 'the same in hashMany', /^messages\[1\] is a view past the end of its resized ArrayBuffer$/);
      throws(() => gcm(new Uint8Array(16), shrunk), InvalidInputError, 'the same as a nonce', /^nonce is a view past the end of its resized ArrayBuffer$/);
      equal(hex(sha256(new Uint8Array(rab, 4, 0))), hex(sha256(new Uint8Array(0))), 'an empty view at its end is empty data');
      throws(() => sha256(Object.create(Uint8Array.prototype) as Uint8Array), InvalidInputError, 'an object inheriting from Uint8Array.prototype', /got object$/);
    },
  },
  {
    name: 'keys and streams keep their core to themselves: no property reaches the WASM memory, and a lookalike AesKey is refused',
    run() {
      const key = senv.aesKey(new Uint8Array(16).fill(7));
      const objects: [string, object][] = [
        ['AesKey', key], ['hash stream', createHash('SHA-256')], ['HMAC stream', createHmac('SHA-256', new Uint8Array(4))],
        ['CMAC stream', senv.createCmac(key)], ['GCM stream', gcm(key, new Uint8Array(12)).encryptStream()],
        ['CBC stream', senv.cbc(key, new Uint8Array(16)).decryptStream()], ['HMAC_DRBG', new senv.HmacDrbg()],
      ];
      for (const [what, o] of objects) {
        // Every property a caller can reach, own and inherited, one level down: none is the core or its memory.
        const seen: unknown[] = [];
        for (let p: object | null = o; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
          for (const name of Object.getOwnPropertyNames(p)) {
            const d = Object.getOwnPropertyDescriptor(p, name)!;
            const v = 'value' in d ? d.value : d.get ? (() => { try { return d.get!.call(o); } catch { return undefined; } })() : undefined;
            seen.push(v);
            if (v && typeof v === 'object') seen.push(...Object.values(v));
          }
        }
        equal(seen.some((v) => v instanceof WebAssembly.Memory || v instanceof WebAssembly.Instance || (typeof v === 'object' && v !== null && 'memory' in v)), false, `${what}: a property reaches the core`);
        equal(['core', 'ctx'].filter((n) => n in o).join(), '', `${what}: core or ctx readable`);
      }
      const n = new Uint8Array(12), data = new Uint8Array(20).fill(1);
      // A lookalike made from the prototype, even carrying a real key's handle, encrypts under nothing.
      const lookalike = Object.assign(Object.create(senv.AesKey.prototype) as senv.AesKey, { keyLength: 16, ctx: 8, core: {} });
      throws(() => gcm(lookalike, n).encrypt(data), InvalidInputError, 'a lookalike AesKey', /AesKey from aesKey\(\)/);
      throws(() => senv.cmac(lookalike, data), InvalidInputError, 'a lookalike AesKey (CMAC)', /AesKey from aesKey\(\)/);
      equal(hex(gcm(key, n).encrypt(data)), hex(gcm(new Uint8Array(16).fill(7), n).encrypt(data)), 'the real key still works');
      key.destroy();
    },
  },
  {
    name: 'a secret given where a name or a number goes is never quoted: a hex or base64 key, a passphrase',
    run() {
      const key = new Uint8Array(16).map((_, i) => 0xa0 + i);
      const secrets = [hex(key), btoa(String.fromCharCode(...key)), 'hunter2'];
      const k16 = new Uint8Array(16), n12 = new Uint8Array(12);
      for (const secret of secrets) {
        const calls: [string, () => unknown][] = [
          ['hash name', () => createHash(secret as HashName)],
          ['hmac hash name', () => hmac(secret as HashName, k16, k16)],
          ['CBC padding', () => senv.cbc(k16, k16, { padding: secret as never })],
          ['GCM tagLength', () => gcm(k16, n12, undefined, { tagLength: secret as never })],
          ['CCM tagLength', () => senv.ccm(k16, n12, undefined, { tagLength: secret as never })],
          ['curve', () => senv.ecdsa(secret as never)],
          ['signature format', () => senv.ecdsa('P-256').sign(k16, senv.ecdsa('P-256').keygen().secretKey, { format: secret as never })],
          ['DRBG hash', () => new senv.HmacDrbg({ hash: secret as HashName })],
          ['core build', () => senv.initSync({ build: secret as never })],
        ];
        for (const [what, call] of calls) {
          const e = throws(call, senv.SenvError, `${what} ${JSON.stringify(secret)}`);
          equal(e.message.includes(secret), false, `${what}: the message quotes the value (${e.message})`);
          equal(/a string of \d+ characters?/.test(e.message), true, `${what}: the message says what was given (${e.message})`);
        }
      }
    },
  },
  {
    name: 'unknown hash names are an UnknownAlgorithmError',
    run() {
      for (const bad of ['SHA-1', 'sha256', 'SHA-224', '', 'constructor', 'toString', 4]) {
        throws(() => createHash(bad as HashName), UnknownAlgorithmError, `createHash(${String(bad)})`, /unknown hash/);
        throws(() => createHmac(bad as HashName, new Uint8Array(4)), UnknownAlgorithmError, `createHmac(${String(bad)})`);
        throws(() => hmac(bad as HashName, new Uint8Array(4), new Uint8Array(0)), UnknownAlgorithmError, `hmac(${String(bad)})`);
      }
    },
  },
  {
    name: 'use after digest() or destroy() is a StateError',
    run() {
      const h = createHash('SHA-512');
      h.update(new Uint8Array(3)).digest();
      throws(() => h.update(new Uint8Array(1)), StateError, 'update after digest', /already finished/);
      throws(() => h.digest(), StateError, 'digest twice');
      const m = createHmac('SHA-384', new Uint8Array(10));
      m.destroy();
      m.destroy();
      throws(() => m.update(new Uint8Array(1)), StateError, 'hmac update after destroy');
    },
  },
  {
    name: 'Symbol.dispose (`using`) destroys whatever holds a key or a state; Symbol.asyncDispose closes the engine and an SE',
    async run() {
      const key = senv.aesKey(new Uint8Array(16)), n = new Uint8Array(12), iv = new Uint8Array(16), one = new Uint8Array(16);
      const made: Record<string, senv.Destroyable> = {
        aesKey: senv.aesKey(new Uint8Array(16)),
        'GCM stream': gcm(key, n).encryptStream(),
        'GCM decrypt stream': gcm(key, n).decryptStream(),
        'collecting CCM stream': senv.ccm(key, n).encryptStream(),
        'CBC stream': senv.cbc(key, iv).encryptStream(),
        hash: createHash('SHA-384'),
        HMAC: createHmac('SHA-256', one),
        CMAC: senv.createCmac(key),
        DRBG: senv.hmacDrbg(),
      };
      for (const [what, o] of Object.entries(made)) {
        o[Symbol.dispose]();
        o[Symbol.dispose]();
        const use = o instanceof senv.HmacDrbg ? () => o.generate(1) : o instanceof senv.AesKey ? () => gcm(o, n).encrypt(one) : () => (o as unknown as { update(d: Uint8Array): unknown }).update(one);
        throws(use, StateError, `${what} after Symbol.dispose`);
      }
      equal(gcm(key, n).encrypt(one).length, 32, 'the key the streams were made from lives on');
      key[Symbol.dispose]();
      const backend = new senv.SoftwareBackend();
      const engine = await senv.McsEngine.create({ backends: [backend] });
      await engine[Symbol.asyncDispose]();
      const r = await engine.send({ op: 2, to: engine.seIds[0] ?? 'se', fr: 'C1', rqi: '1' });
      equal(`${r.rsc} ${(r.pc as Record<string, unknown>)['m2m:dbg']}`, '5000 engine closed', 'a request after Symbol.asyncDispose');
      await backend[Symbol.asyncDispose]();
      await backend[Symbol.asyncDispose]();
      // An SE used on its own, without an engine to close it: its own asyncDispose closes it.
      const alone = new senv.SoftwareBackend();
      await alone.open();
      await alone[Symbol.asyncDispose]();
      const refusal = await alone.random(1, 8).then(() => undefined, (e: unknown) => e);
      ok(refusal instanceof StateError && refusal.message === 'software SE is closed', `a random() after the SE's own Symbol.asyncDispose: ${String(refusal)}`);
    },
  },
];
