// The PC/SC SE backend through pcscd and the senv virtual card: the Mcs
// conformance suite of the software SE, cross-backend results, the batching
// rule in APDU counts, resets, and a card pulled out mid-operation. Then the
// backend over an in-process card (no pcscd) for what a script must provoke:
// card limits, failed commands at awkward moments, use after close.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SecureEnvironmentBackend } from '../../src/backends/backend.ts';
import { discoverPcscBackends, PcscBackend } from '../../src/backends/pcsc/index.ts';
import { SoftwareBackend } from '../../src/backends/software/index.ts';
import {
  AuthenticationError, cbc, DeviceFullError, ecdsa, gcm, hash, hmac, initSync, LengthError, McsEngine, PaddingError, randomBytes, SenvError, sha256, StateError,
  UnknownAlgorithmError,
} from '../../src/index.ts';
import { decodeTlvs, tlvs, u16 } from '../../src/apdu/tlv.ts';
import { CRT, DO, INS, PSO } from '../../src/apdu/profile.ts';
import { prng } from '../portable/harness.ts';
import { decodeCommand, hex } from '../../src/apdu/apdu.ts';
import { ApduError, StatusWordError } from '../../src/apdu/errors.ts';
import { InvalidInputError } from '../../src/core/errors.ts';
import { PcscCard, PcscContext, PcscError, ShortResponseError } from '../../src/pcsc/index.ts';
import { EXTENDED_LIMITS, SHORT_LIMITS, type CardLimits } from '../../src/virtual-card/card.ts';
import type { KeyStore } from '../../src/virtual-card/index.ts';
import { newStamp } from '../../src/virtual-card/keystore.ts';
import { mcsCases } from '../portable/mcs.ts';
import { mcsCipherCases } from '../portable/mcs-cipher.ts';
import { mcsRuleCases } from '../portable/mcs-rules.ts';
import { InProcessReader, setupPcsc, type PcscTestEnv } from './pcsc-helpers.ts';
import { spyUint8Arrays } from './uint8array-spy.ts';
import { b64, body, ok, Session, unb64 } from '../portable/mcs-kit.ts';
import type { VirtualCard } from '../../src/virtual-card/index.ts';

initSync();
const setup = await setupPcsc();

/** The in-process card behind an opened backend. */
async function openedReader(limits?: CardLimits): Promise<{ reader: InProcessReader; b: PcscBackend }> {
  const reader = new InProcessReader(limits);
  const b = reader.backend();
  await b.open();
  return { reader, b };
}

/** The card's SE (behind an in-process reader) and a software SE, opened side by side and closed after `fn`, however it ends. */
async function bothSes(fn: (reader: InProcessReader, b: PcscBackend, soft: SoftwareBackend) => Promise<void>): Promise<void> {
  const { reader, b } = await openedReader();
  const soft = new SoftwareBackend();
  try {
    await soft.open();
    await fn(reader, b, soft);
  } finally {
    await soft.close();
    await b.close();
  }
}


describe.skipIf(!setup.ok)(`PC/SC SE backend${setup.ok ? '' : ` (skipped: ${setup.reason})`}`, () => {
  let env: PcscTestEnv;
  let card: VirtualCard;
  const open: SecureEnvironmentBackend[] = [];

  // The conformance cases create one engine each and never close it, so their
  // backends share the card (each call a PC/SC transaction) and are closed at the end.
  const factory = () => {
    const b = new PcscBackend({ reader: env.slot.reader, share: 'shared' });
    open.push(b);
    return b;
  };

  beforeAll(async () => {
    if (!setup.ok) return;
    env = setup.env;
    card = env.newCard();
    await env.insert(card);
  });
  afterAll(async () => {
    if (!setup.ok) return;
    for (const b of open.splice(0)) await b.close();
    await env.teardown();
  });

  describe('Mcs conformance suite on the PC/SC SE', () => {
    // Cases that read back exportable keys assert the refusal of kExp here: a card keeps its keys.
    for (const c of [...mcsCases(factory), ...mcsCipherCases(factory), ...mcsRuleCases(factory)]) {
      it(c.name, () => c.run(async () => ''), 120_000);
    }
    afterAll(async () => {
      for (const b of open.splice(0)) await b.close();
    });
  });

  it('is discovered from the readers, SEType 2 at security level 3', async () => {
    const found = await discoverPcscBackends();
    try {
      const b = found.find((x) => x.reader === env.slot.reader);
      expect(b).toBeDefined();
      expect(b!.description.seType).toBe(2);
      expect(b!.description.securityLevel).toBe(3);
      expect(b!.capabilities.keyStorage).toBe('device');
      expect(b!.capabilities.signatureAlgorithms).toEqual(expect.arrayContaining([25, 26, 27, 33, 34, 38]));
    } finally {
      for (const b of found) await b.close();
    }
  });

  // The conformance suite checks hwv against the backend's own description, which both would give
  // as "unknown" if the ATR read failed: here it is checked against the card itself.
  it('[deviceInfo] hwv is the ATR of the card in the reader, as pcscd reports it', async () => {
    const engine = await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader })] });
    try {
      const s = new Session(engine, 'CAE-hwv');
      await s.register('reg');
      const dvi = body(ok(await s.retrieve(s.path('reg', 'deviceInfo')), 2000, 'deviceInfo'), 'm2m:dvi');
      expect(card.os.atr().length).toBeGreaterThan(1);
      expect(dvi.hwv).toBe(`ATR ${hex(card.os.atr())}`);
    } finally {
      await engine.close();
    }
  });

  it('gives the same results as the software SE for the same keys and inputs', async () => {
    const sw = new SoftwareBackend();
    const pc = new PcscBackend({ reader: env.slot.reader });
    await sw.open();
    await pc.open();
    try {
      const msg = randomBytes(5000);
      for (const alg of [4, 5, 6] as const) {
        const d1 = await (await sw.digest(alg)).final(msg);
        const d2 = await (await pc.digest(alg)).final(msg);
        expect(Buffer.from(d2).toString('hex')).toBe(Buffer.from(d1).toString('hex'));
      }
      const key = randomBytes(32);
      const kSw = await sw.importKey({ use: 'signature', algorithm: 25 }, 'secret', key);
      const kPc = await pc.importKey({ use: 'signature', algorithm: 25 }, 'secret', key);
      const mac = await (await pc.signature(25, kPc, { format: 'raw', prehashed: false })).sign(msg);
      expect(Buffer.from(mac).equals(Buffer.from(hmac('SHA-256', key, msg)))).toBe(true);
      expect(await (await sw.signature(25, kSw, { format: 'raw', prehashed: false })).verify(mac, msg)).toBe(true);
      // ECDSA: a key generated on the card never leaves it; its signatures verify in the software SE and the core.
      const ec = await pc.generateKey({ use: 'signature', algorithm: 33 });
      const pub = (await pc.publicKey(ec))!;
      await expect(pc.exportKey(ec)).rejects.toThrow(/never leave the card/);
      const pubSw = await sw.importKey({ use: 'signature', algorithm: 33 }, 'public', pub);
      for (const format of ['der', 'raw'] as const) {
        const s = await pc.signature(33, ec, { format, prehashed: false });
        await s.update(msg.subarray(0, 1234));
        const sig = await s.sign(msg.subarray(1234));
        expect(ecdsa('P-256').verify(sig, msg, pub, { format })).toBe(true);
        expect(await (await sw.signature(33, pubSw, { format, prehashed: false })).verify(sig, msg)).toBe(true);
        expect(await (await pc.signature(33, ec, { format, prehashed: false })).verify(sig, msg)).toBe(true);
      }
      // and a signature of the software SE verifies on the card
      const pair = ecdsa('P-384').keygen();
      const swKey = await sw.importKey({ use: 'signature', algorithm: 34 }, 'secret', pair.secretKey);
      const pcPub = await pc.importKey({ use: 'signature', algorithm: 34 }, 'public', pair.publicKey);
      const swSig = await (await sw.signature(34, swKey, { format: 'der', prehashed: false })).sign(msg);
      expect(await (await pc.signature(34, pcPub, { format: 'der', prehashed: false })).verify(swSig, msg)).toBe(true);
      swSig[swSig.length - 1]! ^= 1;
      expect(await (await pc.signature(34, pcPub, { format: 'der', prehashed: false })).verify(swSig, msg)).toBe(false);
      // A prehashed message that is not a digest: the same typed error from either backend.
      for (const [backend, key] of [[sw, swKey], [pc, pcPub]] as const) {
        const s = await backend.signature(34, key, { format: 'der', prehashed: true });
        await expect((async () => s.verify(swSig, new Uint8Array(32)))()).rejects.toThrow(new LengthError('prehashed message must be a 48-byte SHA-384 digest, got 32 bytes'));
      }
      // AES: CMAC (RFC 4493 example 2), CBC-MAC, and AES-GCM across backends, tag failures typed
      const aesKey = Uint8Array.from(Buffer.from('2b7e151628aed2a6abf7158809cf4f3c', 'hex'));
      const cm = await pc.importKey({ use: 'signature', algorithm: 49 }, 'secret', aesKey);
      const cmacOf = await (await pc.signature(49, cm, { format: 'raw', prehashed: false })).sign(Uint8Array.from(Buffer.from('6bc1bee22e409f96e93d7e117393172a', 'hex')));
      expect(Buffer.from(cmacOf).toString('hex')).toBe('070a16b46b4d4144f79bdd9dd04a287c');
      const cb = await pc.importKey({ use: 'signature', algorithm: 18 }, 'secret', aesKey);
      await expect((await pc.signature(18, cb, { format: 'raw', prehashed: false })).sign(new Uint8Array(17))).rejects.toThrow(LengthError);
      const gk = randomBytes(32);
      const nonce = randomBytes(12);
      const aad = randomBytes(20);
      const gPc = await pc.importKey({ use: 'cipher', algorithm: 1002 }, 'secret', gk);
      const gSw = await sw.importKey({ use: 'cipher', algorithm: 1002 }, 'secret', gk);
      const enc = await pc.cipher(1002, gPc, 'encrypt', { nonce, aad });
      const ct = Buffer.concat([await enc.update(msg.subarray(0, 3000)), await enc.final(msg.subarray(3000))]);
      expect(ct.equals(Buffer.from(gcm(gk, nonce, aad).encrypt(msg)))).toBe(true);
      expect(Buffer.from(await (await sw.cipher(1002, gSw, 'decrypt', { nonce, aad })).final(ct)).equals(Buffer.from(msg))).toBe(true);
      ct[ct.length - 1]! ^= 1;
      await expect((await pc.cipher(1002, gPc, 'decrypt', { nonce, aad })).final(ct)).rejects.toThrow(AuthenticationError);
      // stored references reload on a new session
      const stored = await pc.storeKey(ec);
      expect(stored.form).toBe('reference');
      await pc.close();
      const again = new PcscBackend({ reader: env.slot.reader });
      await again.open();
      const reloaded = await again.loadKey({ use: 'signature', algorithm: 33 }, stored);
      const sig = await (await again.signature(33, reloaded, { format: 'raw', prehashed: false })).sign(msg);
      expect(ecdsa('P-256').verify(sig, msg, pub, { format: 'raw' })).toBe(true);
      await again.close();
    } finally {
      await sw.close();
      await pc.close();
    }
  });

  it('costs ceil(data / max payload) + a constant number of APDUs whatever the chunk sizes', async () => {
    for (const extended of [true, false]) {
      await env.remove(card);
      card = env.newCard({ extended });
      await env.insert(card);
      const pc = new PcscBackend({ reader: env.slot.reader });
      await pc.open();
      try {
        const max = pc.capabilities.preferredBatchSize;
        expect(max).toBe(extended ? 0xff00 : 255);
        const n = extended ? 300_000 : 20_000;
        const msg = randomBytes(n);
        const rng = randomBytes(4096);
        for (const round of [0, 1]) {
          const before = pc.apdus;
          const d = await pc.digest(4);
          for (let o = 0, i = 0; o < n; i++) {
            const len = Math.min(n - o, 1 + (rng[i % rng.length]! * 37) % (extended ? 9000 : 700));
            await d.update(msg.subarray(o, o + len));
            o += len;
          }
          expect(Buffer.from(await d.final()).equals(Buffer.from(hash('SHA-256', msg)))).toBe(true);
          const constant = pc.apdus - before - Math.ceil(n / max);
          // MSE:SET, plus MANAGE CHANNEL and SELECT the first time a stream takes a channel
          expect(constant).toBe(round === 0 ? 3 : 1);
        }
        // small operations on channel 0: one APDU each once the environment is set
        const key = await pc.importKey({ use: 'signature', algorithm: 25 }, 'secret', randomBytes(32));
        await (await pc.signature(25, key, { format: 'raw', prehashed: false })).sign(randomBytes(100));
        const before = pc.apdus;
        for (let i = 0; i < 10; i++) await (await pc.signature(25, key, { format: 'raw', prehashed: false })).sign(randomBytes(100));
        expect(pc.apdus - before).toBe(10);
      } finally {
        await pc.close();
      }
    }
  });

  it('keeps sensitive data objects on the card (PUT DATA / GET DATA), across sessions', async () => {
    const a = new PcscBackend({ reader: env.slot.reader });
    await a.open();
    const big = randomBytes(3000);
    try {
      await a.objectStore.write('sdo/one', big);
      await a.objectStore.write('sdo/two', Uint8Array.of(1, 2, 3));
      await a.objectStore.write('sdo/two', Uint8Array.of(4));
      expect(Buffer.from(await a.objectStore.read('sdo/one')).equals(Buffer.from(big))).toBe(true);
    } finally {
      await a.close();
    }
    const b = new PcscBackend({ reader: env.slot.reader });
    await b.open();
    try {
      expect([...(await b.objectStore.read('sdo/two'))]).toEqual([4]);
      await b.objectStore.remove('sdo/one');
      await expect(b.objectStore.read('sdo/one')).rejects.toThrow(/no data object/);
    } finally {
      await b.close();
    }
  });

  it('<sensitiveDataObject> through the Mcs layer: the data lives on the card, the host keeps its size, across restarts', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'senv-sdo-'));
    const masterKey = randomBytes(32);
    // A fresh backend per look, so no cached card directory hides what the engine did.
    const onCard = async (id: string) => {
      const b = new PcscBackend({ reader: env.slot.reader, share: 'shared' });
      await b.open();
      try {
        return await b.objectStore.read(id);
      } finally {
        await b.close();
      }
    };
    const start = async () => {
      const engine = await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader, share: 'shared' })], dataDir, masterKey });
      return { engine, s: new Session(engine, 'CAE1') };
    };
    const data = randomBytes(3000);
    let { engine, s } = await start();
    try {
      await s.register();
      const ri = body(ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(data) } }), 2001, 'create'), 'senv:Sdo').ri as string;
      expect(Buffer.from(await onCard(ri)).equals(Buffer.from(data))).toBe(true);
      await engine.close();
      ({ engine, s } = await start());
      const rep = body(ok(await s.retrieve(s.path('reg', 'd')), 2000, 'after restart'), 'senv:Sdo');
      expect(rep.cbs).toBe(3000);
      expect(Buffer.from(unb64(rep.msg)).equals(Buffer.from(data))).toBe(true);
      ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: b64(data.subarray(0, 7)) } }), 2004, 'replace');
      expect(Buffer.from(await onCard(ri)).equals(Buffer.from(data.subarray(0, 7)))).toBe(true);
      ok(await s.delete(s.path('reg', 'd')), 2002, 'delete');
      await expect(onCard(ri)).rejects.toThrow(/no data object/);
    } finally {
      await engine.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('keys on the card outlive a persisted engine\'s close and serve after the restart; an engine without a store deletes them', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'senv-keys-'));
    const masterKey = randomBytes(32);
    const slots = () => cardKeySlots(card);
    const start = async (persist: boolean) => {
      const engine = await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader, share: 'shared' })], ...(persist ? { dataDir, masterKey } : {}) });
      return { engine, s: new Session(engine, 'CAE1') };
    };
    const key = randomBytes(32), msg = randomBytes(100);
    const mac = (s: Session) => s.update(s.path('reg', 'm'), { 'senv:Sgn': { msg: b64(msg) } }).then(() => s.retrieve(s.path('reg', 'm', 'cSgn')));
    const before = slots().length;
    let { engine, s } = await start(true);
    try {
      await s.register();
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(key) } }), 2001, 'HMAC key on the card');
      const want = b64(hmac('SHA-256', key, msg));
      expect(body(ok(await mac(s), 2000, 'MAC'), 'senv:Sgn').Sgn).toBe(want);
      await engine.close();
      expect(slots().length).toBe(before + 1);
      ({ engine, s } = await start(true));
      expect(body(ok(await mac(s), 2000, 'MAC after the restart'), 'senv:Sgn').Sgn).toBe(want);
      ok(await s.delete(s.seId), 2002, 'deregister');
      await engine.close();
      await new Promise((r) => setTimeout(r, 50));
      expect(slots().length).toBe(before);
      ({ engine, s } = await start(false));
      await s.register();
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(key) } }), 2001, 'in memory');
      await engine.close();
      await new Promise((r) => setTimeout(r, 50));
      expect(slots().length).toBe(before);
    } finally {
      await engine.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('a verification under the public key of kInf leaves no key on the card', async () => {
    const engine = await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader, share: 'shared' })] });
    try {
      const s = new Session(engine, 'CAE1');
      await s.register();
      const { secretKey, publicKey } = ecdsa('P-256').keygen();
      const msg = randomBytes(200);
      const sig = ecdsa('P-256').sign(msg, secretKey, { format: 'der' });
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'v', Salg: 33, kInf: b64(publicKey), Sgn: b64(sig) } }), 2001, 'verify-only');
      const slots = () => cardKeySlots(card).length;
      const before = slots();
      for (let i = 0; i < 5; i++) {
        ok(await s.update(s.path('reg', 'v'), { 'senv:Sgn': { msg: b64(msg) } }), 2004, 'msg');
        expect(body(ok(await s.retrieve(s.path('reg', 'v', 'vSgn')), 2000, 'verify'), 'senv:Sgn').vR).toBe(true);
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(slots()).toBe(before);
    } finally {
      await engine.close();
    }
  });

  it('two applications sharing the card (share: shared) never write a key into each other\'s slot', async () => {
    const engines = [
      await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader, share: 'shared' })] }),
      await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader, share: 'shared' })] }),
    ];
    try {
      const keys = [randomBytes(32), randomBytes(32)];
      const sessions = engines.map((e, i) => new Session(e, `CAPP${i}`));
      for (const [i, s] of sessions.entries()) {
        await s.register();
        // Each engine read the card's map of used slots when it opened: B's is stale once A wrote.
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(keys[i]!) } }), 2001, `key of application ${i}`);
      }
      const mac = async (i: number) => {
        const s = sessions[i]!;
        ok(await s.update(s.path('reg', 'm'), { 'senv:Sgn': { msg: b64(Buffer.from('abc')) } }), 2004, 'msg');
        return body(ok(await s.retrieve(s.path('reg', 'm', 'cSgn')), 2000, `MAC ${i}`), 'senv:Sgn').Sgn;
      };
      for (const i of [0, 1]) expect(await mac(i)).toBe(b64(hmac('SHA-256', keys[i]!, Buffer.from('abc'))));
      ok(await sessions[1]!.delete(sessions[1]!.seId), 2002, 'application 1 deregisters');
      await new Promise((r) => setTimeout(r, 50));
      expect(await mac(0)).toBe(b64(hmac('SHA-256', keys[0]!, Buffer.from('abc'))));
    } finally {
      for (const e of engines) await e.close();
    }
  });

  it('[SEReboot] rebootType 1 and 2 are a cold and a warm reset of the card', async () => {
    const pc = new PcscBackend({ reader: env.slot.reader });
    await pc.open();
    try {
      const a = { ...card.applet.counters };
      await pc.reboot(2);
      const b = { ...card.applet.counters };
      expect([b.warm - a.warm, b.cold - a.cold]).toEqual([1, 0]);
      await pc.reboot(1);
      const c = { ...card.applet.counters };
      expect([c.cold - b.cold, c.warm - b.warm]).toEqual([1, 0]);
      expect((await (await pc.digest(4)).final(new Uint8Array(3))).length).toBe(32);
    } finally {
      await pc.close();
    }
  });

  it('a stream whose channel a removal took fails as the card\'s failure (5000), not as a refused request (4005)', async () => {
    const engine = await McsEngine.create({ backends: [new PcscBackend({ reader: env.slot.reader })] });
    try {
      const s = new Session(engine, 'CAE1');
      await s.register();
      for (const h of ['h1', 'h2']) {
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: h, Halg: 4 } }), 2001, h);
        ok(await s.update(s.path('reg', h), { 'senv:Hsh': { msg: b64(randomBytes(200_000)) } }), 2004, `${h} streams on a channel`);
      }
      await env.remove(card);
      await env.insert(card);
      ok(await s.update(s.path('reg', 'h2'), { 'senv:Hsh': { msg: b64(randomBytes(100_000)) } }), 2004, 'h2 after the reinsertion (the card is reconnected)');
      ok(await s.retrieve(s.path('reg', 'h2', 'cHsh')), 2000, 'h2 replayed');
      const lost = await s.retrieve(s.path('reg', 'h1', 'cHsh'));
      expect(lost.rsc).toBe(5000);
    } finally {
      await engine.close();
    }
  });

  it('the docs that need a card run as written on this one: docs/pcsc.md\'s example and docs/mcs.md\'s last worked procedure', async () => {
    // The example takes the first reader: this card's is put first.
    const doc = (file: string) => readFileSync(new URL(`../../docs/${file}`, import.meta.url), 'utf8');
    const examples = [...doc('pcsc.md').matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!).filter((c) => c.includes("from 'onem2m-senv/pcsc'"));
    expect(examples).toHaveLength(1);
    const establish = async () => {
      const ctx = await PcscContext.establish();
      return {
        listReaders: async () => [env.slot.reader, ...(await ctx.listReaders()).filter((r) => r !== env.slot.reader)],
        connect: (reader: string) => ctx.connect(reader),
        release: () => ctx.release(),
      };
    };
    const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => (...values: unknown[]) => Promise<Uint8Array>;
    // TypeScript as written (reader!), run as the JavaScript it compiles to.
    const code = ts.transpile(`${examples[0]!.replace(/^import .*$/gm, '')}\nreturn rsp;`, { target: ts.ScriptTarget.ES2022 });
    const rsp = await new AsyncFunction('PcscContext', code)({ establish });
    expect(rsp.length).toBeGreaterThanOrEqual(2);

    const page = doc('mcs.md');
    const at = page.indexOf('#### Exportable key on an SE that keeps keys on the device (a PC/SC SE)');
    const [request, response] = [...page.slice(at).matchAll(/^```json\n([\s\S]*?)^```$/gm)].slice(0, 2).map((m) => m[1]!.trim());
    const pageSe = /"to":"(2-[0-9A-F]{16})"/.exec(request!)![1]!;
    const engine = await McsEngine.create({ backends: [new SoftwareBackend(), new PcscBackend({ reader: env.slot.reader, share: 'shared' })] });
    try {
      const se = engine.seIds[1]!;
      // The card's serial in upper-case hex, as the page's.
      expect(se).toMatch(/^2-[0-9A-F]{16}$/);
      const reg = await engine.send({ op: 1, to: se, fr: 'CAE1', rqi: 'reg', rvi: '3', ty: 20011, pc: { 'senv:Senv': { rn: 'reg', sID: se, seL: 3 } } });
      expect(reg.rsc).toBe(2001);
      expect(await engine.send(JSON.parse(request!.split(pageSe).join(se)))).toEqual(JSON.parse(response!));
    } finally {
      await engine.close();
    }
  });

  it('a card removed mid-operation gives a clean Mcs error; other SEs keep serving; reinsertion recovers', async () => {
    const pc = new PcscBackend({ reader: env.slot.reader });
    const engine = await McsEngine.create({ backends: [pc, new SoftwareBackend()] });
    try {
      const [pcId, swId] = engine.seIds as [string, string];
      expect(pcId.startsWith('2-')).toBe(true);
      const send = (op: number, to: string, pc2?: object, ty?: number) =>
        engine.send({ op, to, fr: 'CAE1', rqi: `q${Math.random()}`, rvi: '3', ...(ty ? { ty } : {}), ...(pc2 ? { pc: pc2 } : {}) });
      for (const id of [pcId, swId]) {
        expect((await send(1, id, { 'senv:Senv': { rn: 'reg', sID: id, seL: engine.describe(id)!.description.securityLevel } }, 20011)).rsc).toBe(2001);
        expect((await send(1, id, { 'senv:Hsh': { rn: 'h', Halg: 4 } }, 20004)).rsc).toBe(2001);
      }
      const big = Buffer.from(randomBytes(200_000)).toString('base64');
      expect((await send(3, `${pcId}/reg/h`, { 'senv:Hsh': { msg: big } })).rsc).toBe(2004);
      await env.remove(card);
      const failed = await send(2, `${pcId}/reg/h/cHsh`);
      expect(failed.rsc).toBeGreaterThanOrEqual(5000);
      expect(JSON.stringify(failed)).not.toMatch(/at .*\.ts:\d+/); // no stack traces
      const fine = await send(2, `${swId}/reg/h/cHsh`);
      expect(fine.rsc).toBe(2000);
      await env.insert(card);
      const h2 = await send(1, pcId, { 'senv:Hsh': { rn: 'h2', Halg: 4, msg: Buffer.from('abc').toString('base64') } }, 20004);
      expect(h2.rsc).toBe(2001);
      const r = await send(2, `${pcId}/reg/h2/cHsh`);
      expect(r.rsc).toBe(2000);
      // A reset while the card is out fails (5000) and leaves the SE out of service, but an
      // [SEReboot] is still taken, and once the card is back it brings the SE back.
      await env.remove(card);
      const reboot = () => send(3, `${pcId}/reg/coldReset`, { 'senv:Srbt': { rb: true } });
      expect((await reboot()).rsc).toBe(5000);
      expect(JSON.stringify(await send(2, `${pcId}/reg/h2`))).toMatch(/out of service.*SEReboot/);
      await env.insert(card);
      expect((await send(2, `${pcId}/reg/h2`)).rsc).toBe(5000);
      expect((await reboot()).rsc).toBe(2004);
      expect((await send(2, `${pcId}/reg/h2/cHsh`)).rsc).toBe(2000);
      // Another card in the reader is refused, never used in place of this one (its key slots are another's).
      await env.remove(card);
      const other = env.newCard();
      await env.insert(other);
      expect((await send(2, `${pcId}/reg/h2/cHsh`)).rsc).toBe(5000);
      expect((await send(2, `${pcId}/reg/h2/cHsh`)).rsc).toBe(5000);
      await env.remove(other);
      await env.insert(card);
      expect((await send(2, `${pcId}/reg/h2/cHsh`)).rsc).toBe(2000);
    } finally {
      await engine.close();
    }
  });
});

const SELECT = 0xa4;

describe('PC/SC SE backend over an in-process card', () => {
  it('loadKey refuses what is no stored key with an InvalidInputError, as the software SE does; nothing is sent', async () => {
    const { reader, b } = await openedReader();
    const spec = { use: 'signature', algorithm: 25 } as const;
    reader.sent.length = 0;
    for (const stored of [undefined, null, 'serial:1', { form: 'x', kind: 'secret', ref: 'a:1' }, { form: 'reference', kind: 'secret', ref: 5 }]) {
      await expect(b.loadKey(spec, stored as never), JSON.stringify(stored)).rejects.toBeInstanceOf(InvalidInputError);
      await expect(new SoftwareBackend().loadKey(spec, stored as never), JSON.stringify(stored)).rejects.toBeInstanceOf(InvalidInputError);
    }
    expect(reader.sent).toEqual([]);
    await b.close();
  });

  it('never sends a link above the command data limit the card announced (FF00 with extended length)', async () => {
    const { reader, b } = await openedReader();
    const data = randomBytes(65300);
    await b.objectStore.write('big', data);
    expect(hex(await b.objectStore.read('big'))).toBe(hex(data));
    expect(Math.max(...reader.sent.map((a) => decodeCommand(a).data.length))).toBe(0xff00);
    await b.close();
  });

  for (const limits of [EXTENDED_LIMITS, SHORT_LIMITS]) {
    it(`AEAD with associated data of 64 KiB and more equals the core (${limits === SHORT_LIMITS ? 'short, chained' : 'extended'})`, async () => {
      const b = new InProcessReader(limits).backend();
      await b.open();
      const key = randomBytes(16);
      const nonce = randomBytes(12);
      const aad = randomBytes(70000);
      const msg = randomBytes(100);
      const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', key);
      const ct = await (await b.cipher(1001, k, 'encrypt', { nonce, aad })).final(msg);
      expect(hex(ct)).toBe(hex(gcm(key, nonce, aad).encrypt(msg)));
      expect(hex(await (await b.cipher(1001, k, 'decrypt', { nonce, aad })).final(ct))).toBe(hex(msg));
      await b.close();
    });
  }

  it('a MAC or signature longer than any the algorithm gives is false without the card, as in software (a short card could not take it)', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    const sw = new SoftwareBackend();
    await sw.open();
    const msg = randomBytes(300);
    const macKey = randomBytes(32);
    const pair = ecdsa('P-521').keygen();
    const keys = async (be: SecureEnvironmentBackend) => ({
      25: await be.importKey({ use: 'signature', algorithm: 25 }, 'secret', macKey),
      38: await be.importKey({ use: 'signature', algorithm: 38 }, 'public', pair.publicKey),
    });
    const pcKeys = await keys(b), swKeys = await keys(sw);
    const good = {
      25: { raw: hmac('SHA-256', macKey, msg) },
      38: { raw: ecdsa('P-521').sign(msg, pair.secretKey, { format: 'raw' }), der: ecdsa('P-521').sign(msg, pair.secretKey) },
    };
    const verifies = async (be: SecureEnvironmentBackend, k: typeof pcKeys, alg: 25 | 38, format: 'der' | 'raw', sig: Uint8Array) => {
      const s = await be.signature(alg, k[alg], { format, prehashed: false });
      await s.update(msg.subarray(0, 100));
      return s.verify(sig, msg.subarray(100));
    };
    for (const [alg, format, longest] of [[25, 'raw', 32], [38, 'raw', 132], [38, 'der', 141]] as const) {
      const valid = (good[alg] as Record<string, Uint8Array>)[format]!;
      expect(await verifies(b, pcKeys, alg, format, valid), `${alg} ${format} valid`).toBe(true);
      for (const n of [longest + 1, 300, 1000]) {
        const long = new Uint8Array(n);
        long.set(valid);
        const before = reader.sent.length;
        expect(await verifies(sw, swKeys, alg, format, long), `${alg} ${format} ${n} bytes, software`).toBe(false);
        expect(await verifies(b, pcKeys, alg, format, long), `${alg} ${format} ${n} bytes, card`).toBe(false);
        expect(reader.sent.slice(before).some((a) => a[1] === 0x2a && a[2] === 0x00 && a[3] === 0xa8), 'no VERIFY sent').toBe(false);
      }
      // The card is left as it was: the next verification goes through it.
      expect(await verifies(b, pcKeys, alg, format, valid), `${alg} ${format} valid again`).toBe(true);
    }
    await b.close();
    await sw.close();
  });

  it('a card that answers garbage: every failure is a typed SenvError, no call hangs, and after a reboot the SE computes right again', async () => {
    const rand = prng(0x5e11);
    const pick = (n: number) => rand(1)[0]! % n;
    const aesK = randomBytes(16), macK = randomBytes(32), nonce = randomBytes(12), msg = randomBytes(700);
    const pair = ecdsa('P-256').keygen();
    const sealed = gcm(aesK, nonce).encrypt(msg);
    let failures = 0, answered = 0;
    for (let round = 0; round < 24; round++) {
      const reader = new InProcessReader(round % 2 ? SHORT_LIMITS : EXTENDED_LIMITS);
      const b = reader.backend();
      await b.open();
      const gk = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', aesK.slice());
      const mk = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', macK.slice());
      const ek = await b.importKey({ use: 'signature', algorithm: 33 }, 'secret', pair.secretKey.slice());
      // From here on about one answer in four is the card's own, then broken: cut short, its
      // status word replaced, a data byte changed, bytes added, or nothing but a status word.
      reader.intercept = (apdu) => {
        if (pick(4) !== 0) return undefined;
        const real = reader.os.apdu(apdu);
        const data = real.subarray(0, real.length - 2);
        const sws = [0x9000, 0x6100 | pick(256), 0x6c00 | pick(256), 0x6300, 0x6700, 0x6a80, 0x6a88, 0x6985, 0x6f00, 0x9f00 | pick(256), rand(1)[0]! << 8 | rand(1)[0]!];
        switch (pick(5)) {
          case 0: return real.slice(0, pick(real.length + 1));
          case 1: return Uint8Array.of(...data, ...u16(sws[pick(sws.length)]!));
          case 2: {
            const out = real.slice();
            if (data.length) out[pick(data.length)]! ^= 1 << pick(8);
            return out;
          }
          case 3: return Uint8Array.of(...data, ...rand(1 + pick(40)), ...real.subarray(real.length - 2));
          default: return Uint8Array.from(u16(sws[pick(sws.length)]!));
        }
      };
      const ops: (() => Promise<unknown>)[] = [
        async () => (await b.digest(4)).final(msg),
        async () => (await b.signature(25, mk, { format: 'raw', prehashed: false })).sign(msg),
        async () => (await b.signature(25, mk, { format: 'raw', prehashed: false })).verify(hmac('SHA-256', macK, msg), msg),
        async () => (await b.cipher(1001, gk, 'encrypt', { nonce })).final(msg),
        async () => (await b.cipher(1001, gk, 'decrypt', { nonce })).final(sealed),
        async () => {
          const s = await b.cipher(1001, gk, 'decrypt', { nonce });
          await s.update(sealed.subarray(0, 300));
          return s.final(sealed.subarray(300));
        },
        async () => (await b.signature(33, ek, { format: 'der', prehashed: false })).sign(msg),
        async () => b.random(1, 1 + pick(300)),
        async () => b.objectStore!.write(`o${pick(3)}`, msg.subarray(0, pick(600))),
        async () => b.objectStore!.read(`o${pick(3)}`),
        async () => b.generateKey({ use: 'signature', algorithm: 26 }),
      ];
      for (let i = 0; i < 12; i++) {
        const op = ops[pick(ops.length)]!;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const hang = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('the call hung')), 10_000); });
        try {
          await Promise.race([op(), hang]);
          answered++;
        } catch (e) {
          if (!(e instanceof SenvError)) throw new Error(`round ${round} op ${i}: untyped ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`, { cause: e });
          failures++;
        } finally {
          clearTimeout(timer);
        }
      }
      // A sane card again, reset: the keys on it compute what the core computes.
      reader.intercept = undefined;
      await b.reboot(2);
      expect(hex(await (await b.digest(4)).final(msg))).toBe(hex(sha256(msg)));
      expect(hex(await (await b.signature(25, mk, { format: 'raw', prehashed: false })).sign(msg))).toBe(hex(hmac('SHA-256', macK, msg)));
      expect(hex(await (await b.cipher(1001, gk, 'decrypt', { nonce })).final(sealed))).toBe(hex(msg));
      await b.close();
    }
    // Both kinds of outcome were met, or the test did not test much.
    expect(failures).toBeGreaterThan(40);
    expect(answered).toBeGreaterThan(20);
  }, 120_000);

  it('a digest, MAC, signature or public key the card keeps sending more of is refused at the first piece beyond its length, not followed for 16 MiB', async () => {
    const { reader, b } = await openedReader();
    const mk = await b.importKey({ use: 'signature', algorithm: 27 }, 'secret', randomBytes(64));
    const ek = await b.generateKey({ use: 'signature', algorithm: 38 });
    const msg = randomBytes(100);
    const endless = (a: Uint8Array) => (a[1] === 0x2a && a[0]! & 0x10) ? undefined : (a[1] === 0x2a || a[1] === 0x47 || a[1] === 0xc0) ? Uint8Array.of(...new Uint8Array(200).fill(7), 0x61, 0x00) : undefined;
    const ops: [string, () => Promise<unknown>][] = [
      ['SHA-512 digest', async () => (await b.digest(6)).final(msg)],
      ['HMAC-SHA-512', async () => (await b.signature(27, mk, { format: 'raw', prehashed: false })).sign(msg)],
      ['ECDSA P-521 (DER)', async () => (await b.signature(38, ek, { format: 'der', prehashed: false })).sign(msg)],
      ['P-521 key generation', async () => b.generateKey({ use: 'signature', algorithm: 38 })],
    ];
    for (const [what, op] of ops) {
      const before = reader.sent.length;
      reader.intercept = endless;
      await expect(op(), what).rejects.toThrow(ApduError);
      reader.intercept = undefined;
      expect(reader.sent.length - before, `${what}: APDUs`).toBeLessThan(8);
    }
    // The SE serves again after a reboot.
    await b.reboot(2);
    expect(hex(await (await b.digest(6)).final(msg))).toBe(hex(hash('SHA-512', msg)));
    await b.close();
  });

  it('a data object comes back at the length written: a card that sends more is stopped at the first piece beyond it, one that sends less refused and its bytes zeroized', async () => {
    const { reader, b } = await openedReader({ maxCommandData: 255, maxResponseData: 256 });
    const data = new Uint8Array(40).fill(0x5c);
    await b.objectStore.write('x', data);
    expect(hex(await b.objectStore.read('x', 40))).toBe(hex(data));
    const getObject = (a: Uint8Array) => a[1] === 0xca && a[2] === 0x02;
    const cases: [string, () => Uint8Array][] = [
      ['longer', () => Uint8Array.of(...new Uint8Array(41).fill(1), 0x90, 0x00)],
      ['shorter', () => Uint8Array.of(...new Uint8Array(39).fill(1), 0x90, 0x00)],
      ['endless 61xx', () => Uint8Array.of(...new Uint8Array(200).fill(7), 0x61, 0x00)],
    ];
    for (const [what, answer] of cases) {
      const before = reader.sent.length;
      let given: Uint8Array | undefined;
      reader.intercept = (a) => (getObject(a) || a[1] === 0xc0 ? (given = answer()) : undefined);
      await expect(b.objectStore.read('x', 40), what).rejects.toThrow(ApduError);
      reader.intercept = undefined;
      expect(reader.sent.length - before, `${what}: APDUs`).toBeLessThan(4);
      // The short answer's data (a view of what the card gave) is refused as the object's bytes and goes to no one.
      if (what === 'shorter') expect(hex(given!), 'the bytes of the short answer').toBe('00'.repeat(39) + '9000');
    }
    await b.close();
    // Through Mcs: a RETRIEVE of the <sensitiveDataObject> answers 5000 with a short dbg and none of the bytes.
    const engine = await McsEngine.create({ backends: [reader.backend()] });
    try {
      const s = new Session(engine, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(data) } }), 2001, 'sdo');
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'd')), 2000, 'read'), 'senv:Sdo').msg as string)).toEqual(data);
      reader.intercept = (a) => (getObject(a) ? Uint8Array.of(...new Uint8Array(64).fill(0x5c), 0x90, 0x00) : undefined);
      const r = await s.retrieve(s.path('reg', 'd'));
      reader.intercept = undefined;
      expect(r.rsc).toBe(5000);
      expect(JSON.stringify(r)).not.toContain(b64(data.subarray(0, 12)));
      expect(unb64(body(ok(await s.retrieve(s.path('reg', 'd')), 2000, 'read again'), 'senv:Sdo').msg as string)).toEqual(data);
    } finally {
      await engine.close();
    }
  });

  it('a data object whose deletion the card carried out but whose answer was lost: the next deletion, answered 6A88 (nothing there), completes; 6A88 from elsewhere does not', async () => {
    const reader = new InProcessReader();
    const engine = await McsEngine.create({ backends: [reader.backend(undefined, { commandTimeoutMs: 500 })] });
    try {
      const s = new Session(engine, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: 'QUJD' } }), 2001, 'sdo');
      const deleteObject = (a: Uint8Array) => a[1] === 0xda && a[2] === 0x04;
      reader.intercept = (a) => {
        if (!deleteObject(a)) return undefined;
        reader.intercept = undefined;
        reader.os.apdu(a);
        throw new PcscError('SCardTransmit', 0x8010000a);
      };
      expect((await s.delete(s.path('reg', 'd'))).rsc, 'the lost answer').toBe(5000);
      expect(reader.store.objects.size, 'the card deleted it (the directory remains)').toBe(1);
      // A 6A88 that a GET RESPONSE gave is not the deletion's answer: the resource stays.
      reader.intercept = (a) => (deleteObject(a) ? Uint8Array.of(0x61, 0x02) : a[1] === 0xc0 ? Uint8Array.of(0x6a, 0x88) : undefined);
      expect((await s.delete(s.path('reg', 'd'))).rsc, '6A88 from a GET RESPONSE').toBe(5000);
      reader.intercept = undefined;
      ok(await s.delete(s.path('reg', 'd')), 2002, 'deleted');
      expect((await s.retrieve(s.path('reg', 'd'))).rsc).toBe(4004);
      ok(await s.delete(s.seId), 2002, 'deregistered');
    } finally {
      await engine.close();
    }
  });

  it('an engine without a data directory closed while the card is away: close() still closes, then rejects naming the keys and data objects left on the card; a response without status bytes reads as a removal in m2m:dbg', async () => {
    const reader = new InProcessReader();
    const engine = await McsEngine.create({ backends: [reader.backend(undefined, { commandTimeoutMs: 500 })] });
    const s = new Session(engine, 'CAWAY');
    await s.register();
    for (const rn of ['m1', 'm2']) ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn, Salg: 25, kDt: b64(new Uint8Array(32).fill(7)) } }), 2001, rn);
    const sdo = body(ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: 'QUJD' } }), 2001, 'sdo'), 'senv:Sdo').ri as string;
    const keys = reader.store.keys.size, objects = reader.store.objects.size;
    expect(keys).toBe(2);
    // The card goes away: pcscd answers a transmit with no bytes, which PcscCard.transmit raises as this.
    reader.intercept = () => {
      throw new ShortResponseError(0);
    };
    // A data object is read from the card.
    const r = await s.retrieve(s.path('reg', 'd'));
    expect([r.rsc, r.pc]).toEqual([5000, { 'm2m:dbg': 'internal error (ERR_PCSC short response: card removed or reader failure)' }]);
    const e = await engine.close().then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(StateError);
    // One error names both: the keys the backend could not delete, the data object the engine could not remove.
    expect((e as Error).message).toMatch(new RegExp(String.raw`^closed, but the card in 'in-process' keeps 2 keys \(slot \d+, \d+\) it could not delete: delete them with the card present \(PUT DATA 03 of the slot, docs\/apdu-profile.md\); and 1 data object of <sensitiveDataObject>s stays on the device \(resource ID ${sdo}\): removing it failed \(ERR_PCSC\); remove it with the device present \(a card: PUT DATA 04 of the object its directory, object FE, names for the ID\)$`));
    expect([reader.store.keys.size, reader.store.objects.size], 'what the card still holds').toEqual([keys, objects]);
    await expect(engine.close(), 'the same close').rejects.toBe(e);
    await expect(s.retrieve(s.path('reg', 'm1')).then((x) => x.rsc), 'closed').resolves.toBe(5000);
  });

  it('a key write pcsc-lite refused on a stale connection (a removal or another application\'s reset since the last command) reached no card: close() with the card away names no key for it; one refused at its GET RESPONSE did reach it, and is named', async () => {
    // Responses of at most 16 bytes: a P-256 public key comes in pieces, by GET RESPONSE.
    const reader = new InProcessReader({ maxCommandData: 255, maxResponseData: 16 });
    const engine = await McsEngine.create({ backends: [reader.backend(undefined, { commandTimeoutMs: 500 })] });
    const s = new Session(engine, 'CSTALE');
    await s.register();
    // pcsc-lite's answer to the next command of that INS (once one with INS `after` went), once.
    const stale = (ins: number, code: number, after = ins) => {
      let armed = false;
      reader.intercept = (apdu) => {
        armed ||= apdu[1] === after;
        if (!armed || apdu[1] !== ins) return undefined;
        reader.intercept = undefined;
        throw new PcscError('SCardTransmit', code);
      };
    };
    for (const [scard, code] of [['SCARD_W_REMOVED_CARD', 0x80100069], ['SCARD_W_RESET_CARD', 0x80100068]] as const) {
      stale(INS.PUT_DATA, code);
      const r = await s.create(s.seId, 20012, { 'senv:Sgn': { rn: `m${code}`, Salg: 25, kDt: b64(new Uint8Array(32).fill(7)) } });
      expect([r.rsc, r.pc]).toEqual([5000, { 'm2m:dbg': `internal error (ERR_PCSC ${scard})` }]);
    }
    expect(reader.store.keys.size).toBe(0);
    // The card generated the key pair; the answer's second piece was refused.
    stale(0xc0, 0x80100069, INS.GENERATE_KEY_PAIR);
    const g = await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'e', Salg: 33 } }).then(() => s.retrieve(s.path('reg', 'e', 'gnK')));
    expect([g.rsc, g.pc]).toEqual([5000, { 'm2m:dbg': 'internal error (ERR_PCSC SCARD_W_REMOVED_CARD)' }]);
    expect(reader.store.keys.size).toBe(1);
    reader.intercept = () => {
      throw new ShortResponseError(0);
    };
    const e = await engine.close().then(() => undefined, (x: unknown) => x);
    expect((e as Error).message).toMatch(/^closed, but the card in 'in-process' keeps 1 key \(slot \d+\) it could not delete/);
    expect(reader.store.keys.size).toBe(1);
  });

  it('a data object the engine without a data directory cannot remove at close is reported, after its keys are deleted and the backend closed', async () => {
    const reader = new InProcessReader();
    const engine = await McsEngine.create({ backends: [reader.backend(undefined, { commandTimeoutMs: 500 })] });
    const s = new Session(engine, 'CAWAY');
    await s.register();
    ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(new Uint8Array(32).fill(7)) } }), 2001, 'mac');
    const sdo = body(ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: 'QUJD' } }), 2001, 'sdo'), 'senv:Sdo').ri as string;
    // Only the deletion of data objects fails (PUT DATA 04).
    reader.intercept = (a) => (a[1] === 0xda && a[2] === 0x04 ? Uint8Array.of(0x6f, 0x00) : undefined);
    const disconnects = reader.disconnects;
    await expect(engine.close()).rejects.toThrow(new StateError(`1 data object of <sensitiveDataObject>s stays on the device (resource ID ${sdo}): removing it failed (ERR_CARD_STATUS); remove it with the device present (a card: PUT DATA 04 of the object its directory, object FE, names for the ID)`));
    expect(reader.store.keys.size, 'the key deleted').toBe(0);
    expect(reader.disconnects, 'the backend closed').toBe(disconnects + 1);
  });

  it('a new data object whose write, or whose directory update, lost its answer does not stay on the card unnamed: its bytes are deleted, the directory drops it, the next object takes the number', async () => {
    const secret = new Uint8Array(40).fill(0x5d);
    const held = (reader: InProcessReader) => [...reader.store.objects.entries()].filter(([n]) => n !== 0xfe).map(([n, v]) => [n, hex(v)]);
    // [what loses its answer, after the card carried it out]
    for (const [what, match] of [
      ['the object', (a: Uint8Array) => a[1] === 0xda && a[2] === 0x02 && a[3] !== 0xfe],
      ['the directory', (a: Uint8Array) => a[1] === 0xda && a[2] === 0x02 && a[3] === 0xfe],
    ] as const) {
      const { reader, b } = await openedReader();
      reader.intercept = (a) => {
        if (!match(a)) return undefined;
        reader.intercept = undefined;
        reader.os.apdu(a);
        throw new PcscError('SCardTransmit', 0x8010000a);
      };
      await expect(b.objectStore.write('lost', secret), what).rejects.toThrow(/SCARD_E_TIMEOUT/);
      expect(held(reader), `${what}: nothing left on the card`).toEqual([]);
      // The card's own directory, which the next start reads, does not name it either.
      const directory = () => new TextDecoder().decode(reader.store.objects.get(0xfe));
      expect(directory(), what).not.toContain('lost');
      await expect(b.objectStore.read('lost'), what).rejects.toThrow(/no data object 'lost'/);
      await b.objectStore.write('next', Uint8Array.of(7));
      expect(held(reader), `${what}: the next object in number 1`).toEqual([[1, '07']]);
      expect(directory(), what).toContain('next');
      await b.close();
    }
  });

  // Review BU: the clean-up's directory write failing was ignored, so the card's directory went on naming the failed ID.
  it('a new data object whose directory write lost its answer and whose clean-up directory write failed: the directory is written again before the next change, even one that only replaces', async () => {
    const { reader, b } = await openedReader();
    await b.objectStore.write('d', Uint8Array.of(1));
    let writes = 0;
    reader.intercept = (a) => {
      if (!(a[1] === INS.PUT_DATA && a[2] === DO.OBJECT && a[3] === 0xfe)) return undefined;
      // The first taken with its answer lost, the clean-up's refused.
      if (++writes === 1) reader.os.apdu(a);
      else reader.intercept = undefined;
      throw new ShortResponseError(0);
    };
    await expect(b.objectStore.write('lost', Uint8Array.of(9, 9, 9))).rejects.toBeInstanceOf(ShortResponseError);
    expect(new TextDecoder().decode(reader.store.objects.get(0xfe)), 'the card names it until the next change').toContain('lost');
    await b.objectStore.write('d', Uint8Array.of(2));
    await b.close();
    expect(new TextDecoder().decode(reader.store.objects.get(0xfe))).not.toContain('lost');
    // A new process takes the number the failed object had.
    const again = reader.backend();
    await again.open();
    await again.objectStore.write('x', Uint8Array.of(3));
    expect([...reader.store.objects.keys()].sort((x, y) => x - y)).toEqual([1, 2, 0xfe]);
    await expect(again.objectStore.read('lost')).rejects.toThrow(/no data object 'lost'/);
    await again.close();
  });

  it('a removal whose directory write failed is settled by the next directory write that succeeds: close() then has nothing left to write', async () => {
    const { reader, b } = await openedReader();
    const directory = () => new TextDecoder().decode(reader.store.objects.get(0xfe));
    await b.objectStore.write('a', Uint8Array.of(1));
    await b.objectStore.write('b', Uint8Array.of(2));
    reader.failOnce((x) => x[1] === INS.PUT_DATA && x[2] === DO.OBJECT && x[3] === 0xfe, 0x6f00);
    await b.objectStore.remove('a');
    expect(directory(), 'the card names it until the next change').toContain('a');
    await b.objectStore.remove('b');
    expect(reader.store.objects.size, 'only the directory is left').toBe(1);
    expect(directory()).not.toMatch(/a|b/);
    const before = reader.sent.length;
    await b.close();
    expect(reader.sent.slice(before).map((x) => hex(x.subarray(0, 4))), 'no directory read or written again at close').toEqual([]);
  });

  it('a new data object whose write lost its answer and whose deletion failed too is not handed out again, is deleted before the next change, and close() names one the card still keeps', async () => {
    const secret = new Uint8Array(40).fill(0x5d);
    const held = (reader: InProcessReader) => [...reader.store.objects.entries()].filter(([n]) => n !== 0xfe).map(([n, v]) => [n, hex(v)]);
    const written = (a: Uint8Array) => a[1] === 0xda && a[2] === 0x02 && a[3] !== 0xfe;
    const deletion = (a: Uint8Array) => a[1] === 0xda && a[2] === 0x04;
    /** A new object written, the answer lost; the clean-up deletion lost too (the card pulled for a moment). */
    const loseWriteAndDeletion = (reader: InProcessReader) => {
      reader.intercept = (a) => {
        if (written(a)) {
          reader.os.apdu(a);
          throw new ShortResponseError(0);
        }
        if (deletion(a)) throw new ShortResponseError(0);
        return undefined;
      };
    };
    for (const away of [false, true]) {
      const { reader, b } = await openedReader();
      loseWriteAndDeletion(reader);
      await expect(b.objectStore.write('lost', secret)).rejects.toThrow(ShortResponseError);
      expect(held(reader)).toEqual([[1, hex(secret)]]);
      if (!away) {
        // The card answers again: the next change deletes the orphan first, and its number is free.
        reader.intercept = undefined;
        await b.objectStore.write('next', Uint8Array.of(7));
        expect(held(reader), 'the orphan deleted').toEqual([[1, '07']]);
        await b.close();
        continue;
      }
      // Deletions still refused: the next object does not take the orphan's number (it would be deleted with it).
      reader.intercept = (a) => (deletion(a) ? Uint8Array.of(0x6f, 0x00) : undefined);
      await b.objectStore.write('next', Uint8Array.of(7));
      expect(held(reader)).toEqual([[1, hex(secret)], [2, '07']]);
      // Still refused at close: the backend closes, then names the object left on the card.
      const disconnects = reader.disconnects;
      await expect(b.close()).rejects.toThrow(new StateError("closed, but the card in 'in-process' keeps 1 data object (object 1) it could not delete: delete it with the card present (PUT DATA 04 of the object, docs/apdu-profile.md)"));
      expect(reader.disconnects, 'the session closed').toBe(disconnects + 1);
      expect(held(reader)).toEqual([[1, hex(secret)], [2, '07']]);
    }
    // Shared mode: another engine's SE took the orphan's number meanwhile (its directory did not name it).
    // That object is theirs now: dropped from the orphans, never deleted.
    const reader = new InProcessReader();
    const [mine, theirs] = [reader.backend(undefined, { share: 'shared' }), reader.backend(undefined, { share: 'shared' })];
    await mine.open();
    await theirs.open();
    loseWriteAndDeletion(reader);
    await expect(mine.objectStore.write('lost', secret)).rejects.toThrow(ShortResponseError);
    reader.intercept = undefined;
    await theirs.objectStore.write('theirs', Uint8Array.of(9));
    expect(held(reader)).toEqual([[1, '09']]);
    await mine.objectStore.write('next', Uint8Array.of(7));
    expect(held(reader), 'their object kept').toEqual([[1, '09'], [2, '07']]);
    expect(reader.sent.filter(deletion), 'no deletion of object 1 once it was named').toHaveLength(1);
    await mine.close();
    expect(await theirs.objectStore.read('theirs')).toEqual(Uint8Array.of(9));
    await theirs.close();
  });

  it('new contents of a data object whose answer left the write in doubt are read back: there, the write is done; not there, it failed and the old contents stand; a clear refusal is not asked about', async () => {
    const old = new Uint8Array(24).fill(0x11), next = new Uint8Array(40).fill(0x22);
    const putObject = (a: Uint8Array) => a[1] === 0xda && a[2] === 0x02 && a[3] !== 0xfe;
    const getObject = (a: Uint8Array) => a[1] === 0xca && a[2] === 0x02 && a[3] !== 0xfe;
    const timeout = () => new PcscError('SCardTransmit', 0x8010000a);
    // [case, how the card answers the PUT DATA (given its own answer), whether the card wrote, whether write() resolves]
    const cases: [string, (card: () => Uint8Array) => Uint8Array, boolean, boolean][] = [
      ['written, answer lost', (card) => { card(); throw timeout(); }, true, true],
      ['written, answer 6F00', (card) => { card(); return Uint8Array.of(0x6f, 0x00); }, true, true],
      ['written, answer 6581', (card) => { card(); return Uint8Array.of(0x65, 0x81); }, true, true],
      ['written, answer garbled', (card) => card().subarray(0, 1), true, true],
      ['never reached the card', () => { throw timeout(); }, false, false],
      ['not written, answer 6300', () => Uint8Array.of(0x63, 0x00), false, false],
    ];
    for (const [what, answer, wrote, resolves] of cases) {
      const { reader, b } = await openedReader();
      await b.objectStore.write('d', old);
      let reads = 0;
      reader.intercept = (a) => {
        if (getObject(a)) reads++;
        if (!putObject(a)) return undefined;
        reader.intercept = (g) => (getObject(g) && reads++, undefined);
        return answer(() => reader.os.apdu(a));
      };
      const done = b.objectStore.write('d', next);
      if (resolves) await expect(done, what).resolves.toBeUndefined();
      else await expect(done, what).rejects.toThrow();
      expect(reads, `${what}: the card was asked once`).toBe(1);
      expect(hex(await b.objectStore.read('d', (wrote ? next : old).length)), what).toBe(hex(wrote ? next : old));
      await b.close();
    }
    // A refusal that says nothing changed (6A84: not enough memory) fails at once, and the old contents stand.
    const { reader, b } = await openedReader();
    await b.objectStore.write('d', old);
    const sent = reader.sent.length;
    reader.intercept = (a) => (putObject(a) ? Uint8Array.of(0x6a, 0x84) : undefined);
    await expect(b.objectStore.write('d', next)).rejects.toMatchObject({ name: 'DeviceFullError', message: `the card has no room for ${next.length} bytes of data` });
    reader.intercept = undefined;
    expect(reader.sent.slice(sent).filter(getObject)).toEqual([]);
    expect(hex(await b.objectStore.read('d', old.length))).toBe(hex(old));
    // So does any other answer of the checking class (6700, 6A80): refused before it ran.
    for (const sw of [0x6700, 0x6a80]) {
      const before = reader.sent.length;
      reader.intercept = (a) => (putObject(a) ? Uint8Array.of(sw >> 8, sw & 0xff) : undefined);
      await expect(b.objectStore.write('d', next)).rejects.toMatchObject({ sw });
      reader.intercept = undefined;
      expect(reader.sent.slice(before).filter(getObject), sw.toString(16)).toEqual([]);
    }
    // A read-back that fails too leaves the write in doubt: it fails, with the write's own error.
    reader.intercept = (a) => {
      if (!putObject(a)) return undefined;
      reader.intercept = (g) => { if (getObject(g)) throw timeout(); return undefined; };
      reader.os.apdu(a);
      throw new PcscError('SCardTransmit', 0x80100069);
    };
    await expect(b.objectStore.write('d', next)).rejects.toThrow(/SCARD_W_REMOVED_CARD/);
    await b.close();
    // Through Mcs: the UPDATE whose answer was lost after the card wrote is a success, and what the
    // resource says (cbs) matches what the card holds.
    const other = new InProcessReader();
    const engine = await McsEngine.create({ backends: [other.backend(undefined, { commandTimeoutMs: 500 })] });
    try {
      const s = new Session(engine, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(old) } }), 2001, 'sdo');
      other.intercept = (a) => {
        if (!putObject(a)) return undefined;
        other.intercept = undefined;
        other.os.apdu(a);
        throw timeout();
      };
      ok(await s.update(s.path('reg', 'd'), { 'senv:Sdo': { msg: b64(next) } }), 2004, 'update');
      const shown = body(ok(await s.retrieve(s.path('reg', 'd')), 2000, 'read'), 'senv:Sdo');
      expect(unb64(shown.msg as string)).toEqual(next);
      expect(shown.cbs).toBe(next.length);
    } finally {
      await engine.close();
    }
  });

  it('the data-object directory (FE) is read with its own cap: a card that streams more is stopped at the first piece beyond it', async () => {
    const { reader, b } = await openedReader(EXTENDED_LIMITS);
    const getDirectory = (a: Uint8Array) => a[1] === 0xca && a[2] === 0x02 && a[3] === 0xfe;
    let pieces = 0;
    // 30,000 bytes a piece, always "more to come": the transport alone reads up to its 16 MiB cap (560 pieces).
    reader.intercept = (a) => {
      if (!getDirectory(a) && a[1] !== 0xc0) return undefined;
      pieces++;
      return Uint8Array.of(...new Uint8Array(30_000).fill(0xe0), 0x61, 0x00);
    };
    await expect(b.objectStore.read('x', 4)).rejects.toThrow(ApduError);
    expect(pieces).toBeLessThan(3);
    reader.intercept = undefined;
    // Nothing was kept from the refused answer: the next call reads the real (empty) directory.
    await expect(b.objectStore.read('x', 4)).rejects.toThrow(/no data object 'x'/);
    // The directory cannot outgrow the cap: an ID longer than the engine's resource IDs is refused before anything is written.
    await expect(b.objectStore.write('y'.repeat(65), new Uint8Array(1))).rejects.toThrow(InvalidInputError);
    await b.objectStore.write('y'.repeat(64), Uint8Array.of(9));
    expect(hex(await b.objectStore.read('y'.repeat(64), 1))).toBe('09');
    await b.close();
  });

  // Review BV: entries were taken as the card gave them; one naming FE had the next write put a secret over the directory.
  it('a directory entry naming object FE (or 00), a number or an ID named twice, or an entry without its number is refused at load, naming the entry; nothing is read or written', async () => {
    const entry = (id: string, n: number[]) => [0xe0, tlvs([0x80, new TextEncoder().encode(id)], [0x81, n])] as [number, Uint8Array];
    const cases: [string, [number, Uint8Array][], RegExp][] = [
      ['FE', [entry('a', [0xfe]), entry('b', [2])], /entry 1 names object FE, outside 01-FD/],
      ['00', [entry('a', [1]), entry('b', [0])], /entry 2 names object 00, outside 01-FD/],
      ['number twice', [entry('a', [1]), entry('b', [1])], /entry 2 names object 01, which an earlier entry names/],
      ['ID twice', [entry('b', [1]), entry('b', [2])], /entry 2 names an ID an earlier entry names/],
      ['no number', [entry('a', [1]), [0xe0, tlvs([0x80, new TextEncoder().encode('b')])]], /entry 2 lacks its ID \(80\) or its one-byte number \(81\)/],
    ];
    for (const [what, entries, message] of cases) {
      const { reader, b } = await openedReader();
      await b.objectStore.write('a', new Uint8Array(16).fill(1));
      await b.objectStore.write('b', new Uint8Array(16).fill(2));
      await b.close();
      reader.store.objects.set(0xfe, tlvs(...entries));
      const before = new Map([...reader.store.objects].map(([n, o]) => [n, hex(o)]));
      const again = reader.backend();
      await again.open();
      await expect(again.objectStore.read('b', 16), what).rejects.toThrow(message);
      await expect(again.objectStore.write('a', new Uint8Array(16).fill(9)), what).rejects.toBeInstanceOf(ApduError);
      await expect(again.objectStore.remove('a'), what).rejects.toBeInstanceOf(ApduError);
      expect(new Map([...reader.store.objects].map(([n, o]) => [n, hex(o)])), `${what}: the card is unchanged`).toEqual(before);
      await again.close();
    }
  });

  it('a card that keeps announcing more is stopped within a few APDUs: GET CHALLENGE of 256 bytes, and 6Cxx answers to GET RESPONSE', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    const cases: [string, (a: Uint8Array) => Uint8Array | undefined, () => Promise<unknown>][] = [
      // Ne 256 is "all available" to the transport: GET CHALLENGE states its exact length as its cap.
      ['random(256), 61 00 after every 256 bytes', (a) => (a[1] === 0x84 || a[1] === 0xc0 ? Uint8Array.of(...new Uint8Array(256).fill(3), 0x61, 0x00) : undefined), () => b.random(1, 256)],
      ['random(1000), 61 00 after every 256 bytes', (a) => (a[1] === 0x84 || a[1] === 0xc0 ? Uint8Array.of(...new Uint8Array(256).fill(3), 0x61, 0x00) : undefined), () => b.random(1, 1000)],
      // A 6Cxx to GET RESPONSE carries no data either: it counts as a round without progress.
      ['memoryInfo, 6C 08 to every GET RESPONSE', (a) => (a[1] === 0xca ? Uint8Array.of(0x61, 0x08) : a[1] === 0xc0 ? Uint8Array.of(0x6c, 0x08) : undefined), () => b.memoryInfo()],
    ];
    for (const [what, intercept, op] of cases) {
      const before = reader.sent.length;
      reader.intercept = intercept;
      await expect(op(), what).rejects.toThrow(ApduError);
      reader.intercept = undefined;
      expect(reader.sent.length - before, `${what}: APDUs`).toBeLessThan(8);
      await b.reboot(2);
    }
    expect((await b.random(1, 256)).length).toBe(256);
    // A length that is no byte count is the caller's error, typed, as on the software SE.
    for (const n of [-1, 1.5, NaN]) await expect(b.random(1, n), String(n)).rejects.toThrow(InvalidInputError);
    await b.close();
  });

  // A review found a clean close without a data directory deleting the keys but leaving the data.
  it('an engine without a data directory removes, as it closes, the sensitive data it kept on the card (nothing could name it again); with one it keeps it', async () => {
    for (const persist of [false, true]) {
      const reader = new InProcessReader();
      const dataDir = await mkdtemp(join(tmpdir(), 'senv-sdo-'));
      try {
        const engine = await McsEngine.create({ backends: [reader.backend()], ...(persist ? { dataDir, masterKey: randomBytes(32) } : {}) });
        const s = new Session(engine, 'CAE1');
        await s.register();
        ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn: 'd', msg: b64(randomBytes(100)) } }), 2001, 'data on the card');
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(randomBytes(32)) } }), 2001, 'key on the card');
        const objects = () => [...reader.store.objects.values()].filter((o) => o.length === 100).length;
        expect(objects()).toBe(1);
        await engine.close();
        expect([objects(), reader.store.keys.size], persist ? 'kept for the next run' : 'removed').toEqual(persist ? [1, 1] : [0, 0]);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  });

  // Review BV: a data object gone from the card answered 5000 (ERR_APDU) where a key gone from its slot answers 4005.
  it('a <sensitiveDataObject> whose data was deleted from the card since (object or directory entry, a wiped card) answers 4005 naming it, as a key gone from its slot does', async () => {
    const reader = new InProcessReader();
    const dataDir = await mkdtemp(join(tmpdir(), 'senv-sdo-'));
    const masterKey = randomBytes(32);
    try {
      let engine = await McsEngine.create({ backends: [reader.backend()], dataDir, masterKey });
      let s = new Session(engine, 'CAE1');
      await s.register();
      for (const rn of ['a', 'b']) ok(await s.create(s.seId, 20009, { 'senv:Sdo': { rn, msg: b64(randomBytes(20)) } }), 2001, rn);
      await engine.close();
      // Object 1 deleted with the directory left naming it; then the whole card wiped.
      reader.store.objects.delete(1);
      for (const wipe of [false, true]) {
        if (wipe) reader.store.objects.clear();
        engine = await McsEngine.create({ backends: [reader.backend()], dataDir, masterKey });
        s = new Session(engine, 'CAE1');
        for (const rn of wipe ? ['a', 'b'] : ['a']) {
          const r = await s.retrieve(s.path('reg', rn));
          expect([r.rsc, r.pc?.['m2m:dbg']], `${rn}${wipe ? ', card wiped' : ''}`).toEqual([4005, expect.stringMatching(/^the card holds no data object '\w+' any more: /)]);
        }
        await engine.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  // Review BV: each backend read the card's directory once, so two sharing the card took the same object number.
  it('shared mode: two backends on one card read the object directory in each call: neither takes the other\'s object number, nor writes its directory over the other\'s entries', async () => {
    const reader = new InProcessReader();
    const shared = () => reader.backend(undefined, { share: 'shared' });
    const [a, b] = [shared(), shared()];
    await a.open();
    await b.open();
    const data = { a1: randomBytes(32), b: randomBytes(32), a2: randomBytes(32), t: randomBytes(8) };
    await a.objectStore.write('a1', data.a1);
    await b.objectStore.write('b', data.b);
    await a.objectStore.write('a2', data.a2);
    expect(await b.objectStore.read('b', 32), 'b\'s own data, not a2').toEqual(data.b);
    expect(await a.objectStore.read('a1', 32)).toEqual(data.a1);
    // b removes its object (as an engine without a data directory does at close): a's entries stay.
    await b.objectStore.remove('b');
    await b.close();
    const again = shared();
    await again.open();
    expect(await again.objectStore.read('a2', 32), 'a2 still named after b\'s removal').toEqual(data.a2);
    await again.close();
    // A removal whose directory write failed: the other backend's object written meanwhile keeps its entry.
    await a.objectStore.write('t', data.t);
    const directoryWrite = (x: Uint8Array) => x[1] === INS.PUT_DATA && x[2] === DO.OBJECT && x[3] === 0xfe;
    reader.intercept = (x) => (directoryWrite(x) ? ((reader.intercept = undefined), Uint8Array.of(0x6f, 0x00)) : undefined);
    await a.objectStore.remove('t');
    const c = shared();
    await c.open();
    await c.objectStore.write('c', Uint8Array.of(7));
    await a.objectStore.write('a1', data.a2);
    expect(await c.objectStore.read('c', 1), 'c\'s entry outlives a\'s rewrite of its directory').toEqual(Uint8Array.of(7));
    await expect(c.objectStore.read('t')).rejects.toThrow(/no data object 't'/);
    await a.close();
    await c.close();
  });

  // A review of the profile against the host: FCI fields and the key slot map were taken as given.
  it('a card whose FCI lacks the 8-byte serial, lists algorithms in an odd number of bytes or gives a limit in other than 2 bytes, or whose key slot map is not 32 bytes, is refused at connection', async () => {
    const fci = (fields: [number, number[]][]) => Uint8Array.of(...tlvs([0x6f, tlvs([0x84, [0xf0, 0x53, 0x45, 0x4e, 0x56, 0x01]], [0xa5, tlvs(...fields)])]), 0x90, 0x00);
    const good: [number, number[]][] = [[0x80, [1]], [0x81, [0xff, 0]], [0x85, [0xff, 0]], [0x82, [0x03, 0xe9]], [0x83, [1, 2, 3, 4, 5, 6, 7, 8]]];
    const without = (tag: number) => good.filter(([t]) => t !== tag);
    const cases: [string, [number, number[]][], RegExp][] = [
      ['no serial', without(0x83), /no serial \(tag 83\)/],
      ['a 3-byte serial', [...without(0x83), [0x83, [1, 2, 3]]], /a serial of 3 bytes/],
      ['a 9-byte serial', [...without(0x83), [0x83, [1, 2, 3, 4, 5, 6, 7, 8, 9]]], /a serial of 9 bytes/],
      ['algorithms in 3 bytes', [...without(0x82), [0x82, [0x03, 0xe9, 0x04]]], /algorithms in 3 bytes/],
      ['a 1-byte command limit', [...without(0x81), [0x81, [0xff]]], /tag 81 limit as 1 bytes/],
      ['a response limit of 0', [...without(0x85), [0x85, [0, 0]]], /tag 85 limit as 2 bytes worth 0/],
    ];
    // The card selects its applet as ever; only the FCI it answers is replaced.
    const answering = (reader: InProcessReader, fields: [number, number[]][]) => (a: Uint8Array) => (a[1] === 0xa4 ? (reader.os.apdu(a), fci(fields)) : undefined);
    for (const [what, fields, message] of cases) {
      const reader = new InProcessReader();
      reader.intercept = answering(reader, fields);
      await expect(reader.backend().open(), what).rejects.toThrow(message);
    }
    const ok = new InProcessReader();
    ok.intercept = answering(ok, good);
    const b = ok.backend();
    await b.open();
    await b.close();
    // Without limits (tags 81 and 85) the profile's short ones hold: 255-byte command fields in short APDUs, 256-byte answers.
    const plain = new InProcessReader(SHORT_LIMITS);
    plain.intercept = answering(plain, [...good.filter(([t]) => t !== 0x81 && t !== 0x85 && t !== 0x82), [0x82, [0x00, 0x04]]]);
    const p = plain.backend();
    await p.open();
    const mark = plain.sent.length;
    await servesDigest(p, 1000);
    const links = plain.sent.slice(mark).filter((a) => a[1] === 0x2a);
    expect(links.map((a) => [a[4], a.length - 5]), 'short Lc, 255 bytes a link').toEqual([[255, 255], [255, 255], [255, 255], [235, 236]]);
    const challenges = plain.sent.length;
    expect((await p.random(1, 512)).length).toBe(512);
    expect(plain.sent.length - challenges, 'GET CHALLENGE of 256 bytes twice').toBe(2);
    await p.close();
    const short = new InProcessReader();
    short.intercept = (a) => (a[1] === 0xca && a[2] === 0xdf && a[3] === 0x04 ? Uint8Array.of(0x80, 0x90, 0x00) : undefined);
    await expect(short.backend().open()).rejects.toThrow(/1 bytes of the key slot map \(DF04\) instead of 32/);
  });

  it('a card announcing a command data field too small for a VERIFY template in one command is refused at connection', async () => {
    const reader = new InProcessReader({ maxCommandData: 143, maxResponseData: 256 });
    await expect(reader.backend().open()).rejects.toThrow(/tag 81.*144/);
    // 144 takes the largest template (a DER P-521 signature): verification works, also on the card's smallest field.
    const { b } = await openedReader({ maxCommandData: 144, maxResponseData: 256 });
    const k = await b.generateKey({ use: 'signature', algorithm: 38 });
    const msg = randomBytes(500);
    const sig = await (await b.signature(38, k, { format: 'der', prehashed: false })).sign(msg);
    expect(sig.length).toBeGreaterThan(130);
    expect(await (await b.signature(38, k, { format: 'der', prehashed: false })).verify(sig, msg)).toBe(true);
    const mk = await b.importKey({ use: 'signature', algorithm: 27 }, 'secret', randomBytes(64));
    const mac = await (await b.signature(27, mk, { format: 'raw', prehashed: false })).sign(msg);
    expect(await (await b.signature(27, mk, { format: 'raw', prehashed: false })).verify(mac, msg)).toBe(true);
    await b.close();
  });

  it('an AEAD takes the nonce and CBC the IV, whichever else the parameters hold (as in the software SE)', async () => {
    await bothSes(async (_reader, b, soft) => {
      const key = randomBytes(16), nonce = randomBytes(12), iv = randomBytes(16), data = randomBytes(40);
      for (const alg of [1001, 1003, 24] as const) {
        const params = { nonce, iv, aad: randomBytes(5) };
        const run = async (be: SecureEnvironmentBackend) => {
          const s = await be.cipher(alg, await be.importKey({ use: 'cipher', algorithm: alg }, 'secret', key), 'encrypt', params);
          return hex(await s.final(data));
        };
        expect(await run(b), `algorithm ${alg}`).toBe(await run(soft));
      }
    });
  });

  it('random(): GET CHALLENGE sized to what the stack returns; a short answer is an error, never zeros', async () => {
    // The card's tag 85 says 1024, but without extended length one APDU returns 256 bytes at most.
    const reader = new InProcessReader({ maxCommandData: 255, maxResponseData: 1024 });
    const given: Uint8Array[] = [];
    reader.intercept = (apdu) => {
      if (apdu[1] !== 0x84) return undefined;
      const r = reader.os.apdu(apdu);
      // A copy: the backend zeroizes the random bytes it received once they are in its result.
      given.push(r.slice(0, r.length - 2));
      return r;
    };
    const b = reader.backend();
    await b.open();
    const out = await b.random(2, 1024);
    expect(given.map((g) => g.length)).toEqual([256, 256, 256, 256]);
    expect(hex(out)).toBe(hex(Uint8Array.from(given.flatMap((g) => [...g]))));
    reader.intercept = (apdu) => (apdu[1] === 0x84 ? Uint8Array.of(1, 2, 3, 4, 0x90, 0x00) : undefined);
    await expect(b.random(1, 8)).rejects.toBeInstanceOf(ApduError);
    await b.close();
  });

  it('random(): the bytes of a call whose later GET CHALLENGE fails (refused, short, unanswered) are zeroized, handed to no one', async () => {
    // 300 bytes: a GET CHALLENGE of 256 the card answers, then one of 44 that fails.
    const { reader, b } = await openedReader({ maxCommandData: 255, maxResponseData: 1024 });
    const cases = [
      ['refused', () => Uint8Array.of(0x6f, 0x00)],
      ['short', () => Uint8Array.of(1, 2, 3, 4, 0x90, 0x00)],
      ['unanswered', () => {
        throw new PcscError('SCardTransmit', 0x8010000a);
      }],
    ] as const;
    const got = [];
    for (const [what, second] of cases) {
      let n = 0;
      reader.intercept = (apdu) => (apdu[1] !== 0x84 ? undefined : ++n === 1 ? Uint8Array.of(...new Uint8Array(256).fill(0xa5), 0x90, 0x00) : second());
      // The result the bytes were gathered in is never returned: it is the array of 300 they are set into. Its
      // distinct byte values after the call: [0] once zeroized.
      const set = vi.spyOn(Uint8Array.prototype, 'set');
      const e = await b.random(1, 300).then(() => undefined, (x: Error) => x.constructor.name);
      const into = [...new Set((set.mock.contexts as Uint8Array[]).filter((t) => t.length === 300))];
      set.mockRestore();
      got.push([what, e, into.map((out) => [...new Set(out)])]);
    }
    reader.intercept = undefined;
    expect(got).toEqual([['refused', 'StatusWordError', [[0]]], ['short', 'ApduError', [[0]]], ['unanswered', 'PcscError', [[0]]]]);
    await b.close();
  });

  it('a SELECT that fails while connecting releases the card; the next call connects afresh', async () => {
    const reader = new InProcessReader();
    reader.failOnce((a) => a[1] === SELECT, 0x6f00);
    const b = reader.backend();
    await expect(b.open()).rejects.toBeInstanceOf(StatusWordError);
    expect([reader.connects, reader.disconnects]).toEqual([1, 1]);
    await b.open();
    expect(reader.connects).toBe(2);
    expect((await (await b.digest(4)).final(Uint8Array.of(1))).length).toBe(32);
    await b.close();
  });

  // Review BV: a reset selected the applet again without the serial check a reconnect makes.
  it('a card exchanged before an [SEReboot] is refused at the reset as at a reconnect: none of its objects is read under this card\'s directory; the own card back serves again', async () => {
    const other = await openedReader();
    await other.b.objectStore.write('theirs', new TextEncoder().encode('CARD-2-SECRET-16'));
    await other.b.close();
    const { reader, b } = await openedReader();
    const mine = new TextEncoder().encode('card-1-mine-data');
    await b.objectStore.write('d', mine);
    reader.intercept = (a) => other.reader.os.apdu(a);
    for (const type of [1, 2] as const) await expect(b.reboot(type), `reboot ${type}`).rejects.toThrow(/another card \(serial [0-9A-F]{16}\) is in the reader/);
    await expect(b.objectStore.read('d', 16), 'the reconnect that follows').rejects.toThrow(/another card/);
    reader.intercept = undefined;
    expect(await b.objectStore.read('d', 16)).toEqual(mine);
    await b.close();
  });

  it('after close() calls fail with StateError and never connect again', async () => {
    const { reader, b } = await openedReader();
    const k = await b.generateKey({ use: 'signature', algorithm: 25 });
    await b.objectStore.write('x', Uint8Array.of(1, 2, 3));
    await b.close();
    expect([reader.connects, reader.disconnects]).toEqual([1, 1]);
    const sent = reader.sent.length;
    b.deleteKey(k);
    await expect(b.objectStore.read('x')).rejects.toBeInstanceOf(StateError);
    await expect(b.objectStore.write('y', Uint8Array.of(1))).rejects.toBeInstanceOf(StateError);
    await expect(b.objectStore.remove('x')).rejects.toBeInstanceOf(StateError);
    await new Promise((r) => setTimeout(r, 20));
    expect([reader.connects, reader.sent.length]).toEqual([1, sent]);
  });

  it('called directly: a key of another SE or a released one, an algorithm or rngType the card does not offer, and a closed backend are refused, typed and named, before anything is sent', async () => {
    const { reader, b } = await openedReader();
    const other = await openedReader();
    const mine = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', randomBytes(16));
    const theirs = await other.b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', randomBytes(16));
    const sw = new SoftwareBackend();
    await sw.open();
    const software = await sw.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', randomBytes(16));
    const released = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', randomBytes(16));
    b.releaseKey(released);
    const sent = reader.sent.length;
    const params = { nonce: randomBytes(12) };
    for (const [k, what] of [[theirs, 'another card SE'], [software, 'the software SE'], [{}, 'no handle']] as const) {
      await expect(b.cipher(1001, k as never, 'encrypt', params), what).rejects.toThrow(new StateError('key handle does not belong to the PC/SC SE in-process'));
      await expect(b.storeKey(k as never), what).rejects.toThrow(/does not belong to the PC\/SC SE in-process/);
      // Neither released nor deleted here: the handle is another SE's to release.
      b.releaseKey(k as never);
      b.deleteKey(k as never);
    }
    await expect(b.cipher(1001, released, 'encrypt', params)).rejects.toThrow(new StateError('key was released'));
    await expect(b.signature(25, released, { format: 'raw', prehashed: false })).rejects.toThrow(new StateError('key was released'));
    // A released handle's slot is the data directory's: a later deleteKey() of it deletes nothing.
    b.deleteKey(released);
    await expect(b.digest(7 as never)).rejects.toThrow(new UnknownAlgorithmError('hash algorithm 7'));
    await expect(b.cipher(9999 as never, mine, 'encrypt', params)).rejects.toThrow(new UnknownAlgorithmError('cipher algorithm 9999'));
    await expect(b.random(3 as never, 8)).rejects.toThrow(new UnknownAlgorithmError('rngType 3'));
    await new Promise((r) => setTimeout(r, 20));
    expect(reader.sent.length, 'nothing sent').toBe(sent);
    expect(reader.store.keys.size, 'the released key stays on the card').toBe(2);
    // The key of the other SE is still its own.
    expect((await (await other.b.cipher(1001, theirs, 'encrypt', params)).final(Uint8Array.of(1))).length).toBe(17);
    await other.b.close();
    await b.close();
    await expect(b.open()).rejects.toThrow(new StateError('backend closed'));
    await expect(b.reboot(1)).rejects.toThrow(new StateError('backend closed'));
    await expect(b.memoryInfo()).rejects.toThrow(new StateError('PC/SC SE in-process is closed'));
    await expect(b.random(1, 8)).rejects.toThrow(new StateError('PC/SC SE in-process is closed'));
    expect([reader.connects, reader.sent.length], 'close() deletes no released key; nothing after it connects').toEqual([1, sent]);
  });

  it('an ECDSA secret whose public key cannot be read back is deleted from the card', async () => {
    const { reader, b } = await openedReader();
    reader.failOnce((a) => a[1] === 0x47 && a[2] === 0x81, 0x6f00);
    await expect(b.importKey({ use: 'signature', algorithm: 33 }, 'secret', ecdsa('P-256').keygen().secretKey)).rejects.toBeInstanceOf(StatusWordError);
    expect(reader.store.keys.size).toBe(0);
    // and its slot is free for the next key
    await b.importKey({ use: 'signature', algorithm: 33 }, 'secret', ecdsa('P-256').keygen().secretKey);
    expect([...reader.store.keys.keys()]).toEqual([1]);
    await b.close();
  });

  it('a logical channel whose SELECT fails is closed again', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    reader.failOnce((a) => a[1] === SELECT && (a[0]! & 0x03) !== 0, 0x6a82);
    const failed = await b.digest(4);
    await expect(failed.update(randomBytes(300))).rejects.toBeInstanceOf(StatusWordError);
    // The failed update ended the stream: no later part of the message is taken, nor a final() over what is left.
    await expect(failed.update(randomBytes(8))).rejects.toThrow(/already finished/);
    await expect(failed.final()).rejects.toThrow(/already finished/);
    failed.abort();
    expect(reader.sent.map(hex)).toContain('00708001');
    // the channel is the card's again: the next stream gets it
    const d = await b.digest(4);
    const msg = randomBytes(300);
    await d.update(msg);
    expect(hex(await d.final())).toBe(hex(sha256(msg)));
    expect(reader.sent.map(hex).filter((a) => a === '0070000001').length).toBe(2);
    await b.close();
  });

  it('a keyed stream aborted mid-chain is ended on the card at once: no PSO context (key schedule) stays behind', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    const key = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', randomBytes(16));
    const s = await b.cipher(1001, key, 'encrypt', { nonce: randomBytes(12) });
    await s.update(randomBytes(2000));
    expect(reader.streamsOpen()).toBe(1);
    s.abort();
    b.deleteKey(key);
    await new Promise((r) => setTimeout(r, 20));
    expect(reader.streamsOpen()).toBe(0);
    await servesDigest(b, 2000);
    await b.close();
  });

  it('a channel whose chain cannot be ended after an abort is closed, never left out of the pool', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    const s = await b.digest(4);
    await s.update(randomBytes(2000));
    expect(reader.streamsOpen()).toBe(1);
    reader.failOnce((a) => a[1] === 0xa4, 0x6f00);
    const before = reader.sent.length;
    s.abort();
    await new Promise((r) => setTimeout(r, 20));
    expect(reader.sent.slice(before).some((a) => a[1] === 0x70 && a[2] === 0x80)).toBe(true);
    expect(reader.streamsOpen()).toBe(0);
    await servesDigest(b, 2000);
    await b.close();
  });

  it('a stream aborted mid-chain leaves its channel usable: the next stream\'s MSE:SET ends the chain and is sent again', async () => {
    const { b } = await openedReader(SHORT_LIMITS);
    const aborted = await b.digest(4);
    await aborted.update(randomBytes(600));
    aborted.abort();
    await servesDigest(b, 600);
    await b.close();
  });
});

/** The next stream on the backend works: a digest over `n` bytes equals the core's. */
async function servesDigest(b: SecureEnvironmentBackend, n: number): Promise<void> {
  const d = await b.digest(4);
  const msg = randomBytes(n);
  await d.update(msg);
  expect(hex(await d.final())).toBe(hex(sha256(msg)));
}

/** The key slots the card's own store holds (private to its applet), whatever a host believes. */
function cardKeySlots(card: VirtualCard): number[] {
  return [...(card.applet as unknown as { store: KeyStore }).store.keys.keys()];
}

describe('PC/SC streams copy what the caller gives them', () => {
  const kept = (b: Uint8Array) => Buffer.from(b).toString('hex');
  it('a Buffer given to an ECDSA, HMAC or GCM stream is still the caller\'s afterwards (Buffer#slice is a view)', async () => {
    const b = new InProcessReader().backend();
    await b.open();
    const ec = await b.generateKey({ use: 'signature', algorithm: 33 });
    const hm = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', globalThis.crypto.getRandomValues(new Uint8Array(32)));
    const aes = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', globalThis.crypto.getRandomValues(new Uint8Array(16)));
    for (const [what, run] of [
      ['ECDSA', async (m: Uint8Array) => { const s = await b.signature(33, ec, { format: 'raw', prehashed: false }); await s.update(m); await s.sign(); }],
      ['HMAC', async (m: Uint8Array) => { const s = await b.signature(25, hm, { format: 'raw', prehashed: false }); await s.update(m); await s.sign(); }],
      ['GCM', async (m: Uint8Array) => { const c = await b.cipher(1001, aes, 'encrypt', { nonce: new Uint8Array(12) }); await c.final(m); }],
    ] as const) {
      const msg = Buffer.from(`the caller keeps this message (${what})`);
      const before = kept(msg);
      await run(msg);
      expect(kept(msg), what).toBe(before);
    }
    await b.close();
  });

  it('PcscCard.control refuses a bad code before it copies the data (a PIN must not be left in an unwiped copy)', async () => {
    const card = new (PcscCard as unknown as new (...a: unknown[]) => { control(code: number, d: Uint8Array): Promise<Uint8Array> })(
      { constants: { SCARD_CTL_CODE_BASE: 0x42000000 } }, { control: async (_c: number, d: Uint8Array) => d }, 'fake', 0, 0);
    const pin = Uint8Array.of(0x31, 0x32, 0x33, 0x34);
    const spy = spyUint8Arrays();
    try {
      expect(() => card.control(-1, pin)).toThrow(/control code/);
    } finally {
      spy.stop();
    }
    expect(spy.made.filter((c) => c.some((x) => x !== 0)).map(kept)).toEqual([]);
  });
});

describe('PC/SC streams read their arguments when given', () => {
  it('ECDSA sign(last) signs the real bytes of a last chunk whose length lies; cipher() keeps the nonce and AAD it was given', async () => {
    const { ecdsa, gcm } = await import('../../src/index.ts');
    const b = new InProcessReader().backend();
    await b.open();
    const k = await b.generateKey({ use: 'signature', algorithm: 33 });
    const pub = (await b.publicKey(k))!;
    class Lying extends Uint8Array {
      override get length(): number {
        return this.byteLength + 4;
      }
    }
    const s = await b.signature(33, k, { format: 'raw', prehashed: false });
    const sig = await s.sign(new Lying(10).fill(5));
    expect(ecdsa('P-256').verify(sig, new Uint8Array(10).fill(5), pub, { format: 'raw' })).toBe(true);

    const keyBytes = new Uint8Array(16).fill(9);
    const aes = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', keyBytes.slice());
    const nonce = new Uint8Array(12).fill(1), aad = new Uint8Array(8).fill(2), msg = new Uint8Array(20).fill(3);
    const c = await b.cipher(1001, aes, 'encrypt', { nonce, aad });
    nonce.fill(0);
    aad.fill(0);
    expect(Buffer.from(await c.final(msg)).toString('hex')).toBe(Buffer.from(gcm(keyBytes, new Uint8Array(12).fill(1), new Uint8Array(8).fill(2)).encrypt(msg)).toString('hex'));
    await b.close();
  });
});

describe('PC/SC cipher streams end cleanly', () => {
  it('a final() that fails ends the stream (no retry under wiped parameters); an abort while an update waits sends nothing and holds no channel', async () => {
    const { gcm } = await import('../../src/index.ts');
    const { reader, b } = await openedReader();
    const keyBytes = new Uint8Array(16).fill(9);
    const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', keyBytes.slice());
    const s = await b.cipher(1001, k, 'encrypt', { nonce: new Uint8Array(12).fill(1), aad: new Uint8Array(8).fill(2) });
    await expect(s.final('not bytes' as unknown as Uint8Array)).rejects.toThrow(/must be a Uint8Array/);
    await expect(s.final(new Uint8Array(20).fill(3)), 'a retry').rejects.toThrow(StateError);
    await expect(s.update(new Uint8Array(200_000)), 'links under the wiped nonce').rejects.toThrow(StateError);
    const session = (b as unknown as { session: { numbers: Set<number>; free: unknown[] } }).session;
    const mark = reader.sent.length;
    for (let i = 0; i < 3; i++) {
      const c = await b.cipher(1001, k, 'encrypt', { nonce: new Uint8Array(12).fill(1) });
      const pending = c.update(new Uint8Array(200_000));
      c.abort();
      await pending.catch(() => undefined);
    }
    expect(reader.sent.slice(mark).map(hex), 'nothing sent for the aborted updates').toEqual([]);
    expect(session.numbers.size - session.free.length, 'channels still held after three aborts').toBe(0);
    await expect(b.cipher(1001, k, 'encrypt', { nonce: 'n' as unknown as Uint8Array }), 'the parameter is named').rejects.toThrow(/nonce must be a Uint8Array/);
    const ok = await b.cipher(1001, k, 'encrypt', { nonce: new Uint8Array(12).fill(1) });
    expect(Buffer.from(await ok.final(new Uint8Array(5))).toString('hex')).toBe(Buffer.from(gcm(keyBytes, new Uint8Array(12).fill(1)).encrypt(new Uint8Array(5))).toString('hex'));
    await b.close();
  });

  it('a second final() does not disturb the first; abort() while final() is pending fails it; an abort while the channel opens sends nothing on it', async () => {
    const { gcm } = await import('../../src/index.ts');
    const hexOf = (u: Uint8Array) => Buffer.from(u).toString('hex');
    const { reader, b } = await openedReader();
    const keyBytes = new Uint8Array(16).fill(9), nonce = new Uint8Array(12).fill(1), aad = new Uint8Array(8).fill(2);
    const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', keyBytes.slice());
    const msg = new Uint8Array(1000).fill(4);
    const s = await b.cipher(1001, k, 'encrypt', { nonce, aad });
    await s.update(msg);
    const first = s.final();
    await expect(s.final(), 'a second final').rejects.toThrow(StateError);
    expect(hexOf(await first), 'the first final is whole').toBe(hexOf(gcm(keyBytes, nonce, aad).encrypt(msg)));

    const t = await b.cipher(1001, k, 'encrypt', { nonce, aad });
    await t.update(msg);
    const pending = t.final();
    t.abort();
    await expect(pending, 'a final overtaken by abort').rejects.toThrow(/aborted/);

    const u = await b.cipher(1001, k, 'encrypt', { nonce, aad });
    const mark = reader.sent.length;
    let fired = false;
    reader.intercept = (apdu) => {
      // MANAGE CHANNEL open: the stream is aborted while its channel is being opened.
      if (!fired && apdu[1] === 0x70) {
        fired = true;
        u.abort();
      }
      return undefined;
    };
    expect((await u.update(new Uint8Array(200_000))).length).toBe(0);
    reader.intercept = undefined;
    expect(reader.sent.slice(mark).filter((a) => a[1] === 0x22 && (a[0]! & 0x03) !== 0), 'no MSE:SET on the new channel').toEqual([]);
    const session = (b as unknown as { session: { numbers: Set<number>; free: unknown[] } }).session;
    expect(session.numbers.size - session.free.length, 'no channel held').toBe(0);
    await b.close();
  });
});

describe('PC/SC link streams that fail or are aborted part way', () => {
  /** The logical channels open on the virtual card (its OS's own record). */
  const cardChannels = (r: InProcessReader) =>
    (r.os as unknown as { channels: (unknown | null)[] }).channels.flatMap((c, i) => (c && i > 0 ? [i] : []));
  const chainedOn0 = (apdu: Uint8Array) => apdu[1] === 0x2a && (apdu[0]! & 0x10) !== 0 && (apdu[0]! & 0x03) === 0;
  const chainedPso = (apdu: Uint8Array) => apdu[1] === 0x2a && (apdu[0]! & 0x10) !== 0;
  /**
   * The card's own answers to the PSO links `pick` keeps (the arrays the host receives, to look at
   * afterwards); the ones it refuses are answered 6F00 in the card's place. `kept`: answers so far.
   */
  function keepAnswers(reader: InProcessReader, pick: (apdu: Uint8Array, kept: number) => 'keep' | 'refuse' | undefined): Uint8Array[] {
    const answers: Uint8Array[] = [];
    reader.intercept = (apdu) => {
      const what = pick(apdu, answers.length);
      if (what === 'refuse') return Uint8Array.of(0x6f, 0x00);
      if (what !== 'keep') return undefined;
      const answer = reader.os.apdu(apdu);
      answers.push(answer);
      return answer;
    };
    return answers;
  }
  /** Each answer brought plaintext, and it is zeroized now. */
  function expectZeroized(answers: Uint8Array[]): void {
    for (const a of answers) {
      const data = a.subarray(0, -2);
      expect(data.length, 'plaintext answered').toBeGreaterThan(0);
      expect(data.every((x) => x === 0), 'zeroized').toBe(true);
    }
  }
  /** The last PSO link on a logical channel gets no answer, and the SELECT that would end its chain fails (the MANAGE CHANNEL close too, with `closeFails`). */
  function timeoutOnOwnChannel(reader: InProcessReader, closeFails: boolean) {
    reader.intercept = (apdu) => {
      const own = (apdu[0]! & 0x03) !== 0;
      if (own && apdu[1] === 0x2a && (apdu[0]! & 0x10) === 0) throw new PcscError('SCardTransmit', 0x8010000a);
      if (own && apdu[1] === 0xa4) return Uint8Array.of(0x6f, 0x00);
      if (closeFails && apdu[1] === 0x70 && apdu[2] === 0x80) return Uint8Array.of(0x6f, 0x00);
      return undefined;
    };
  }
  /** Three digest streams holding the three logical channels, and a fourth with 200,000 bytes buffered, which must end on channel 0. */
  async function holdingChannels(b: PcscBackend) {
    const others = [];
    for (let i = 0; i < 3; i++) {
      const o = await b.digest(4);
      await o.update(new Uint8Array(200_000));
      others.push(o);
    }
    const s = await b.digest(4);
    await s.update(new Uint8Array(200_000).fill(7));
    return { s, others };
  }
  /** Aborts `s` when its first chained link on channel 0 goes out. */
  function abortAtFirstLink(reader: InProcessReader, s: { abort(): void }) {
    let fired = false;
    reader.intercept = (apdu) => {
      if (!fired && chainedOn0(apdu)) {
        fired = true;
        s.abort();
      }
      return undefined;
    };
  }
  /**
   * The GET RESPONSE that fetches the data of the next command `after` picks answers `sw` in the card's place,
   * once; `command`, when given, answers that command itself (the card ran it and announced its data, 61xx).
   */
  function failGetResponse(reader: InProcessReader, after: (apdu: Uint8Array) => boolean, sw: number, command?: (apdu: Uint8Array) => Uint8Array): void {
    let armed = false;
    let done = false;
    reader.intercept = (apdu) => {
      if (!done && after(apdu)) {
        armed = true;
        if (command) return command(apdu);
      }
      if (!armed || apdu[1] !== 0xc0) return undefined;
      armed = false;
      done = true;
      return Uint8Array.of(sw >> 8, sw & 0xff);
    };
  }
  /** The card is lost once (the session drops): the next call connects again and selects the applet. */
  async function loseCard(reader: InProcessReader, b: PcscBackend): Promise<void> {
    reader.intercept = () => {
      reader.intercept = undefined;
      throw new PcscError('SCardTransmit', 0x80100069); // SCARD_W_REMOVED_CARD
    };
    await expect(b.random(1, 8)).rejects.toThrow(/SCARD_W_REMOVED_CARD/);
  }
  /** What a call came to: its value, or its error (a StatusWordError with the command and status word), for tables whose diff shows every case. */
  const outcome = (p: Promise<unknown>): Promise<unknown> => p.then((v) => v, (e: Error) =>
    (e instanceof StatusWordError ? { error: 'StatusWordError', command: e.command, sw: e.sw } : { error: e.constructor.name, message: e.message }));
  /**
   * An Mcs engine over an in-process card, registered as `reg`. `once(head, sw)` answers the next APDU whose
   * header is `head` (CLA without its channel number, INS, P1, P2; hex) with `sw` in the card's place.
   */
  async function mcsOverCard(limits?: CardLimits) {
    const reader = new InProcessReader(limits);
    const engine = await McsEngine.create({ backends: [reader.backend()] });
    const se = engine.seIds[0]!;
    let n = 0;
    const send = (op: number, to: string, pc?: object, ty?: number) => engine.send({ op, to, fr: 'CAE1', rqi: `r${++n}`, ...(ty ? { ty } : {}), ...(pc ? { pc } : {}) }, { binary: true });
    expect((await send(1, se, { 'senv:Senv': { rn: 'reg', sID: se, seL: 3 } }, 20011)).rsc).toBe(2001);
    const head = (a: Uint8Array) => Buffer.from([a[0]! & 0xfc, a[1]!, a[2]!, a[3]!]).toString('hex');
    const once = (h: string, sw: number) => reader.failOnce((a) => head(a) === h, sw);
    return { reader, engine, se, send, once };
  }

  it('an abort while final() chains on channel 0 ends that chain: the next user of channel 0 starts clean', async () => {
    const { reader, b } = await openedReader();
    const { s, others } = await holdingChannels(b);
    abortAtFirstLink(reader, s);
    await expect(s.final()).rejects.toThrow(/aborted/);
    reader.intercept = undefined;
    // Ended on the card itself, not left for the next command (an MSE:SET would retry after 6883 and hide it).
    expect((reader.os as unknown as { channels: { chain: unknown }[] }).channels[0]!.chain, 'chain on channel 0').toBeNull();
    const d = await b.digest(4);
    const abc = new TextEncoder().encode('abc');
    expect(Buffer.from(await d.final(abc)).toString('hex'), 'sha256("abc") on channel 0 afterwards').toBe(Buffer.from(sha256(abc)).toString('hex'));
    expect((await b.random(1, 16)).length).toBe(16);
    for (const o of others) o.abort();
    await b.close();
  });

  it('calls queued behind an aborted channel-0 final() run on a clean channel 0; a wrong MAC costs no SELECT', async () => {
    const { reader, b } = await openedReader();
    const k = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(5));
    const ref = (k as unknown as { ref: number }).ref;
    const { s, others } = await holdingChannels(b);
    abortAtFirstLink(reader, s);
    const aborted = s.final();
    const abc = new TextEncoder().encode('abc');
    const d = await b.digest(4);
    const queued = [d.final(abc), b.random(1, 16), b.deleteKey(k)] as const;
    await expect(aborted).rejects.toThrow(/aborted/);
    reader.intercept = undefined;
    const [digest, random] = await Promise.all(queued);
    expect(Buffer.from(digest).toString('hex')).toBe(Buffer.from(sha256(abc)).toString('hex'));
    expect(random.length).toBe(16);
    expect(reader.store.keys.has(ref), 'the queued deleteKey deleted the key').toBe(false);
    for (const o of others) o.abort();

    const mac = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(3));
    const mark = reader.sent.length;
    expect(await (await b.signature(25, mac, { format: 'raw', prehashed: false })).verify(new Uint8Array(32), abc)).toBe(false);
    expect(reader.sent.slice(mark).filter((a) => a[1] === 0xa4), 'no SELECT after a wrong MAC').toEqual([]);
    await b.close();
  });

  it('a final() whose command got no answer (a timeout) ends the chain it may have left, in its own turn, on channel 0 and on its own channel', async () => {
    const timeout = () => new PcscError('SCardTransmit', 0x8010000a);
    const { reader, b } = await openedReader();
    const k = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(5));
    const ref = (k as unknown as { ref: number }).ref;
    const { s, others } = await holdingChannels(b);
    let n = 0;
    reader.intercept = (apdu) => {
      if (chainedOn0(apdu) && ++n === 2) throw timeout();
      return undefined;
    };
    await expect(s.final()).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    expect((await b.random(1, 16)).length, 'GET CHALLENGE on channel 0 afterwards').toBe(16);
    await b.deleteKey(k);
    expect(reader.store.keys.has(ref), 'a deleteKey on channel 0 afterwards').toBe(false);
    for (const o of others) o.abort();

    const own = await b.digest(4);
    await own.update(new Uint8Array(200_000).fill(7));
    reader.intercept = (apdu) => {
      if (apdu[1] === 0x2a && (apdu[0]! & 0x10) === 0 && (apdu[0]! & 0x03) !== 0) throw timeout();
      return undefined;
    };
    await expect(own.final()).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    expect(reader.streamsOpen(), 'no PSO context left on the pooled channel').toBe(0);
    await b.close();
  });

  it('after a timeout, a channel the SELECT cannot clean is closed, not pooled; an answered last command costs no SELECT, even when aborted', async () => {
    const { reader, b } = await openedReader();
    const session = (b as unknown as { session: { numbers: Set<number>; free: unknown[] } }).session;
    const s = await b.digest(4);
    await s.update(new Uint8Array(200_000).fill(7));
    timeoutOnOwnChannel(reader, false);
    await expect(s.final()).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    expect({ streams: reader.streamsOpen(), opened: session.numbers.size, free: session.free.length }).toEqual({ streams: 0, opened: 0, free: 0 });

    for (const size of [10, 200_000]) {
      const t = await b.digest(4);
      await t.update(new Uint8Array(size).fill(7));
      const mark = reader.sent.length;
      reader.intercept = (apdu) => {
        if (apdu[1] === 0x2a && (apdu[0]! & 0x10) === 0) t.abort();
        return undefined;
      };
      await expect(t.final()).rejects.toThrow(/aborted/);
      reader.intercept = undefined;
      expect(reader.sent.slice(mark).filter((a) => a[1] === 0xa4), `no SELECT (${size} bytes)`).toEqual([]);
    }
    await b.close();
  });

  it('a final() whose message fails at its end (bad padding) zeroizes the plaintext its last chunk\'s links answered', async () => {
    const { reader, b } = await openedReader();
    const keyBytes = new Uint8Array(16).fill(3), iv = new Uint8Array(16);
    const key = await b.importKey({ use: 'cipher', algorithm: 24 }, 'secret', keyBytes);
    // A last block that decrypts to zeros: no PKCS#5 padding.
    const plain = new Uint8Array(EXTENDED_LIMITS.maxCommandData + 32).fill(0x41);
    plain.fill(0, -16);
    const ct = cbc(keyBytes, iv, { padding: 'none' }).encrypt(plain);
    const answers = keepAnswers(reader, (a) => (chainedPso(a) ? 'keep' : undefined));
    const s = await b.cipher(24, key, 'decrypt', { iv });
    await expect(s.final(ct)).rejects.toBeInstanceOf(PaddingError);
    reader.intercept = undefined;
    expect(answers.length, 'a chained link answered').toBe(1);
    expectZeroized(answers);
    await b.close();
  });

  it('a final() on channel 0 whose last link fails zeroizes what its chained links answered: a decryption\'s plaintext goes to no one', async () => {
    const { reader, b } = await openedReader();
    const { others } = await holdingChannels(b);
    const key = await b.importKey({ use: 'cipher', algorithm: 13 }, 'secret', new Uint8Array(16).fill(3));
    const s = await b.cipher(13, key, 'decrypt', { iv: new Uint8Array(16) });
    const max = EXTENDED_LIMITS.maxCommandData;
    expect((await s.update(new Uint8Array(2 * max + 16).fill(0x5a))).length, 'no channel free: buffered').toBe(0);
    const decipherOn0 = (a: Uint8Array) => a[1] === INS.PSO && ((a[2]! << 8) | a[3]!) === PSO.DECIPHER && (a[0]! & 0x03) === 0;
    // The chained links run; the last one (unchained) fails.
    const answers = keepAnswers(reader, (a) => (!decipherOn0(a) ? undefined : a[0]! & 0x10 ? 'keep' : 'refuse'));
    await expect(s.final()).rejects.toBeInstanceOf(StatusWordError);
    reader.intercept = undefined;
    expect(answers.length, 'chained links on channel 0').toBe(2);
    expectZeroized(answers);
    for (const o of others) o.abort();
    await b.close();
  });

  it('after a card\'s error answer to an operation on channel 0, the next operation there sets its environment again (a card may drop it on an error)', async () => {
    const { reader, b } = await openedReader();
    const abc = new TextEncoder().encode('abc');
    const mse = () => reader.sent.filter((a) => a[1] === 0x22).length;
    expect(hex(await (await b.digest(4)).final(abc))).toBe(hex(sha256(abc)));
    let before = mse();
    expect(hex(await (await b.digest(4)).final(abc)), 'the same environment again').toBe(hex(sha256(abc)));
    expect(mse() - before, 'kept: no MSE:SET').toBe(0);
    reader.failOnce((a) => a[1] === 0x2a && (a[0]! & 0x10) === 0, 0x6f00);
    await expect((await b.digest(4)).final(abc)).rejects.toBeInstanceOf(StatusWordError);
    before = mse();
    expect(hex(await (await b.digest(4)).final(abc))).toBe(hex(sha256(abc)));
    expect(mse() - before, 'MSE:SET sent again').toBe(1);
    await b.close();
  });

  it('an environment that extends the one the channel holds (the same key and nonce, now with AAD) is set again, not taken for it', async () => {
    const { b } = await openedReader();
    const keyBytes = new Uint8Array(16).fill(4), nonce = new Uint8Array(12).fill(1), aad = new Uint8Array(5).fill(2), msg = new Uint8Array(20).fill(3);
    const key = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', keyBytes);
    const encrypt = async (params: { nonce: Uint8Array; aad?: Uint8Array }) => (await b.cipher(1001, key, 'encrypt', params)).final(msg);
    expect(hex(await encrypt({ nonce }))).toBe(hex(gcm(keyBytes, nonce).encrypt(msg)));
    expect(hex(await encrypt({ nonce, aad }))).toBe(hex(gcm(keyBytes, nonce, aad).encrypt(msg)));
    await b.close();
  });

  it('a MAC verified over an empty message sends the VERIFY alone: no empty COMPUTE link before it', async () => {
    const { reader, b } = await openedReader();
    const key = new Uint8Array(32).fill(8);
    const k = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', key);
    const mark = reader.sent.length;
    const s = await b.signature(25, k, { format: 'raw', prehashed: false });
    expect(await s.verify(hmac('SHA-256', key, new Uint8Array(0)))).toBe(true);
    expect(reader.sent.slice(mark).filter((a) => a[1] === 0x2a).map((a) => hex(a.subarray(0, 4))), 'PSO commands').toEqual(['002A00A8']);
    await b.close();
  });

  it('an update whose second link fails zeroizes what the first link answered: a decryption\'s plaintext goes to no one', async () => {
    const { reader, b } = await openedReader();
    const key = await b.importKey({ use: 'cipher', algorithm: 13 }, 'secret', new Uint8Array(16).fill(3));
    const s = await b.cipher(13, key, 'decrypt', { iv: new Uint8Array(16) });
    const answers = keepAnswers(reader, (a, kept) => (!chainedPso(a) ? undefined : kept ? 'refuse' : 'keep'));
    const max = EXTENDED_LIMITS.maxCommandData;
    await expect(s.update(new Uint8Array(2 * max + 16).fill(0x5a))).rejects.toBeInstanceOf(StatusWordError);
    reader.intercept = undefined;
    expect(answers.length, 'the first link answered').toBe(1);
    expectZeroized(answers);
    await b.close();
  });

  it('6700 is a length the mode refuses only as a PSO\'s answer: from the MSE:SET that sets the IV it is the card\'s fault, not the caller\'s', async () => {
    const { reader, b } = await openedReader();
    const key = await b.importKey({ use: 'cipher', algorithm: 13 }, 'secret', new Uint8Array(16).fill(1));
    const encrypt = async () => (await b.cipher(13, key, 'encrypt', { iv: new Uint8Array(16) })).final(new Uint8Array(32));
    reader.failOnce((a) => a[1] === 0x22, 0x6700);
    expect(await outcome(encrypt())).toMatchObject({ error: 'StatusWordError', sw: 0x6700 });
    reader.failOnce((a) => a[1] === 0x2a, 0x6700);
    expect(await outcome(encrypt()), 'from the PSO').toMatchObject({ error: 'LengthError' });
    await b.close();
  });

  it('6A80 is bad key material only as the PUT DATA\'s own answer: from the SELECT of a reconnection it is the card\'s fault, not the caller\'s', async () => {
    const { reader, b } = await openedReader();
    await loseCard(reader, b);
    reader.failOnce((a) => a[1] === 0xa4, 0x6a80);
    const refused = await outcome(b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16).fill(1)));
    expect(refused).toMatchObject({ error: 'StatusWordError', sw: 0x6a80 });
    await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16).fill(1));
    await b.close();
  });

  it('a stream aborted while a reset waits in the queue sends nothing after it: the reset ended its chain, and no SELECT meets a channel the card no longer has', async () => {
    const { reader, b } = await openedReader();
    const s = await b.digest(4);
    await s.update(new Uint8Array(200_000));
    const reboot = b.reboot(2);
    s.abort();
    await reboot;
    const mark = reader.sent.length, connects = reader.connects;
    await servesDigest(b, 200_000);
    expect({
      // The new stream's own channel: opened and selected once.
      opens: reader.sent.slice(mark).filter((a) => a[1] === 0x70 && a[2] === 0x00).length,
      selects: reader.sent.slice(mark).filter((a) => a[1] === 0xa4).length,
      closes: reader.sent.slice(mark).filter((a) => a[1] === 0x70 && a[2] === 0x80).length,
      connects: reader.connects - connects,
    }).toEqual({ opens: 1, selects: 1, closes: 0, connects: 0 });
    await b.close();
  });

  it('a stream whose channel a reset ended sends no more links: a new stream holding that channel number keeps its own message', async () => {
    const { reader, b } = await openedReader();
    const first = await b.digest(4);
    await first.update(new Uint8Array(200_000).fill(1));
    const held = reader.sent.filter((a) => a[1] === 0x2a && (a[0]! & 0x03) !== 0).map((a) => a[0]! & 0x03);
    expect(held.length, 'links on a channel of its own').toBeGreaterThan(0);
    await b.reboot(2);
    const second = await b.digest(4);
    const msg = new Uint8Array(200_000).fill(2);
    await second.update(msg);
    const now = reader.sent.filter((a) => a[1] === 0x2a && (a[0]! & 0x03) !== 0).map((a) => a[0]! & 0x03);
    expect(now.at(-1), 'the new stream has the old one\'s channel number').toBe(held[0]);
    await expect(first.update(new Uint8Array(200_000).fill(1))).rejects.toThrow(/reset or removed/);
    expect(hex(await second.final())).toBe(hex(sha256(msg)));
    await b.close();
  });

  it('after a timeout on channel 0 whose SELECT times out too, the session starts over: the next call works at once', async () => {
    const { reader, b } = await openedReader();
    const { s, others } = await holdingChannels(b);
    reader.intercept = (apdu) => {
      const on0 = (apdu[0]! & 0x03) === 0;
      if (on0 && ((apdu[1] === 0x2a && (apdu[0]! & 0x10) === 0) || apdu[1] === 0xa4)) throw new PcscError('SCardTransmit', 0x8010000a);
      return undefined;
    };
    await expect(s.final()).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    expect((await b.random(1, 8)).length, 'GET CHALLENGE right after').toBe(8);
    // The card was reset, not only left: the other streams' channels and PSO contexts (key schedules) are gone
    // from it, and those streams fail as reset, rather than finding their chains cut later.
    expect({ channels: cardChannels(reader), streams: reader.streamsOpen() }).toEqual({ channels: [], streams: 0 });
    await expect(others[0]!.final()).rejects.toThrow(/reset or removed/);
    for (const o of others) o.abort();
    // and a new stream gets a logical channel of its own again
    const mark = reader.sent.length;
    const msg = new Uint8Array(200_000).fill(3);
    const d = await b.digest(4);
    await d.update(msg);
    expect(hex(await d.final())).toBe(hex(sha256(msg)));
    expect(reader.sent.slice(mark).filter((a) => a[1] === 0x2a && (a[0]! & 0x03) !== 0).length).toBeGreaterThan(0);
    await b.close();
    expect(cardChannels(reader), 'close() gives the pooled channel back').toEqual([]);
  });

  it('after a timeout, a logical channel that neither SELECT nor MANAGE CHANNEL can clean makes the card reset: all three channels serve again, and no fourth is asked for', async () => {
    const { reader, b } = await openedReader();
    const s = await b.digest(4);
    await s.update(new Uint8Array(200_000).fill(7));
    timeoutOnOwnChannel(reader, true);
    await expect(s.final()).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    expect({ channels: cardChannels(reader), streams: reader.streamsOpen() }).toEqual({ channels: [], streams: 0 });
    const held = [];
    const mark = reader.sent.length;
    for (let i = 0; i < 3; i++) {
      const o = await b.digest(4);
      await o.update(new Uint8Array(200_000));
      held.push(o);
    }
    expect(cardChannels(reader), 'three streams, three channels').toEqual([1, 2, 3]);
    expect(reader.sent.slice(mark).filter((a) => a[1] === 0x2a && (a[0]! & 0x03) === 0)).toEqual([]);
    // The profile promises three channels: with those held, a fourth stream buffers without asking the card for one.
    const fourth = await b.digest(4);
    const asked = reader.sent.length;
    await fourth.update(new Uint8Array(200_000));
    expect(reader.sent.slice(asked).map(hex), 'a fourth stream sends nothing before its final()').toEqual([]);
    fourth.abort();
    for (const o of held) o.abort();
    await b.close();
    expect({ channels: cardChannels(reader), streams: reader.streamsOpen() }).toEqual({ channels: [], streams: 0 });
  });

  it('close() returns pooled channels to the card, and resets it when a stream still holds one (its PSO context ends)', async () => {
    const { reader, b } = await openedReader();
    const held = await b.digest(4);
    await held.update(new Uint8Array(200_000));
    const pooled = await b.digest(4);
    await pooled.update(new Uint8Array(200_000));
    await pooled.final();
    expect({ channels: cardChannels(reader), streams: reader.streamsOpen() }).toEqual({ channels: [1, 2], streams: 1 });
    await b.close();
    expect({ channels: cardChannels(reader), streams: reader.streamsOpen() }).toEqual({ channels: [], streams: 0 });

    const second = await openedReader();
    const p2 = await second.b.digest(4);
    await p2.update(new Uint8Array(200_000));
    await p2.final();
    const closes = second.reader.sent.length;
    await second.b.close();
    expect(second.reader.sent.slice(closes).map(hex), 'MANAGE CHANNEL close, no reset').toEqual(['00708001']);
    expect(cardChannels(second.reader)).toEqual([]);
  });

  it('close() after the card refused a channel (another application holds some) closes its own with MANAGE CHANNEL and resets nothing', async () => {
    const { reader, b } = await openedReader();
    // Another application's channels 1 and 2.
    for (let i = 0; i < 2; i++) reader.os.apdu(Uint8Array.of(0x00, 0x70, 0x00, 0x00, 0x01));
    const s1 = await b.digest(4);
    await s1.update(new Uint8Array(200_000));
    const s2 = await b.digest(4);
    await s2.update(new Uint8Array(200_000));
    await s1.final();
    await s2.final();
    const mark = reader.sent.length;
    await b.close();
    expect(reader.sent.slice(mark).map(hex)).toEqual(['00708003']);
    expect(cardChannels(reader), 'the other application\'s channels survive').toEqual([1, 2]);
  });

  it('a clean-up queued behind a call that drops the session does not reconnect to end a chain the reset took', async () => {
    const { reader, b } = await openedReader();
    const { s, others } = await holdingChannels(b);
    reader.intercept = (apdu) => {
      const on0 = (apdu[0]! & 0x03) === 0;
      if (on0 && apdu[1] === 0x2a && (apdu[0]! & 0x10) === 0) {
        others[0]!.abort(); // its SELECT is queued behind this final()
        throw new PcscError('SCardTransmit', 0x8010000a);
      }
      if (on0 && apdu[1] === 0xa4) throw new PcscError('SCardTransmit', 0x8010000a);
      return undefined;
    };
    await expect(s.final()).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    await new Promise((r) => setTimeout(r, 20));
    expect({ connects: reader.connects, disconnects: reader.disconnects }).toEqual({ connects: 1, disconnects: 1 });
    for (const o of others) o.abort();
    await b.close();
    expect(reader.connects, 'nor does close()').toBe(1);
  });

  it('a timed-out MANAGE CHANNEL open the card carried out, or a close whose answer was lost, leaves no channel behind and no number held against the card', async () => {
    const timedOut = (reader: InProcessReader, a: Uint8Array): never => {
      reader.os.apdu(a); // the card carried it out; the answer never came
      throw new PcscError('SCardTransmit', 0x8010000a);
    };
    // The open: the card holds channel 1, which the session never learnt of.
    const first = await openedReader();
    let armed = true;
    first.reader.intercept = (a) => (armed && a[1] === 0x70 && a[2] === 0 ? ((armed = false), timedOut(first.reader, a)) : undefined);
    const s = await first.b.digest(4);
    await expect(s.update(new Uint8Array(70_000))).rejects.toThrow(/SCARD_E_TIMEOUT/);
    first.reader.intercept = undefined;
    await first.b.close();
    expect(cardChannels(first.reader), 'close() reset the card').toEqual([]);

    // The close: SELECT on the new channel and the MANAGE CHANNEL that closes it both time out, though the card
    // ran them; it hands the number out again, and that is no duplicate.
    const second = await openedReader();
    let state = 0;
    second.reader.intercept = (a) => {
      if (state === 0 && a[0] === 0x01 && a[1] === 0xa4) return (state = 1), timedOut(second.reader, a);
      if (state === 1 && a[1] === 0x70 && a[2] === 0x80) return (state = 2), timedOut(second.reader, a);
      return undefined;
    };
    const t = await second.b.digest(4);
    await expect(t.update(new Uint8Array(70_000))).rejects.toThrow(/SCARD_E_TIMEOUT/);
    second.reader.intercept = undefined;
    const msg = new Uint8Array(140_000).fill(4);
    const u = await second.b.digest(4);
    await u.update(msg);
    expect(hex(await u.final())).toBe(hex(sha256(msg)));
    await second.b.close();
    expect(cardChannels(second.reader)).toEqual([]);
  });

  it('AEAD output beyond the transport\'s 16 MiB cap is taken when it is what the message makes: CCM\'s whole ciphertext at its last link', async () => {
    const { ccm } = await import('../../src/index.ts');
    const { b } = await openedReader();
    const key = new Uint8Array(16).fill(6), nonce = new Uint8Array(12).fill(7);
    const k = await b.importKey({ use: 'cipher', algorithm: 1003 }, 'secret', key.slice());
    const data = new Uint8Array((1 << 24) - 1).fill(8);
    const s = await b.cipher(1003, k, 'encrypt', { nonce });
    for (let o = 0; o < data.length; o += 1 << 20) await s.update(data.subarray(o, o + (1 << 20)));
    const out = await s.final();
    expect(out.length).toBe(data.length + 16);
    expect(hex(sha256(out))).toBe(hex(sha256(ccm(key, nonce, undefined, { tagLength: 16 }).encrypt(data))));
    await b.close();
  }, 60_000);

  // One byte more than 65,537 pieces of 256 bytes: the GET RESPONSE rounds a cipher link is allowed follow what may
  // come, counted in the pieces the card announces (tag 85), not those the stack could take.
  for (const [what, limits] of [['short APDUs', SHORT_LIMITS], ['extended commands, 256-byte responses (as over T=0)', { maxCommandData: 0xff00, maxResponseData: 256 }]] as const) {
    it(`a GCM plaintext larger than 16 MiB comes back whole from a card with ${what}`, async () => {
      const { b } = await openedReader(limits);
      const key = new Uint8Array(16).fill(6), nonce = new Uint8Array(12).fill(7);
      const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', key.slice());
      const plain = new Uint8Array(65_537 * 256 + 1).fill(8);
      const sealed = gcm(key, nonce).encrypt(plain);
      const s = await b.cipher(1001, k, 'decrypt', { nonce });
      for (let o = 0; o < sealed.length; o += 1 << 20) await s.update(sealed.subarray(o, o + (1 << 20)));
      const out = await s.final();
      expect(out.length).toBe(plain.length);
      expect(hex(sha256(out))).toBe(hex(sha256(plain)));
      await b.close();
    }, 120_000);
  }

  it('a close that fails with a reader error, the card maybe still there, resets it: no channel or PSO context of a stream is left on it', async () => {
    const logical = (a: Uint8Array) => (a[0]! & 0x40 ? true : (a[0]! & 0x03) !== 0);
    const { reader, b } = await openedReader();
    const held = await b.digest(4);
    await held.update(new Uint8Array(70_000));
    let step = 0;
    reader.intercept = (a) => {
      if (step === 0 && a[1] === 0xa4 && logical(a)) return (step = 1), Uint8Array.of(0x6f, 0x00);
      if (step === 1 && a[1] === 0x70 && a[2] === 0x80) {
        step = 2;
        throw new ShortResponseError(0); // the card never saw the close
      }
      return undefined;
    };
    const s = await b.digest(4);
    await expect(s.update(new Uint8Array(70_000))).rejects.toThrow();
    reader.intercept = undefined;
    expect({ channels: cardChannels(reader), streams: reader.streamsOpen() }).toEqual({ channels: [], streams: 0 });
    await expect(held.final(), 'the stream whose context the reset ended').rejects.toThrow(/reset or removed/);
    await b.close();
  });

  it('a card lost while a channel is given back, or an applet the reset card will not select, makes the next call reconnect', async () => {
    const logical = (a: Uint8Array) => (a[0]! & 0x40 ? true : (a[0]! & 0x03) !== 0);
    const { reader, b } = await openedReader();
    let step = 0;
    reader.intercept = (a) => {
      if (step === 0 && a[1] === 0xa4 && logical(a)) return (step = 1), Uint8Array.of(0x6f, 0x00);
      if (step === 1 && a[1] === 0x70 && a[2] === 0x80) {
        step = 2;
        reader.os.power('warm');
        throw new ShortResponseError(0);
      }
      return undefined;
    };
    const s = await b.digest(4);
    await expect(s.update(new Uint8Array(70_000))).rejects.toThrow();
    reader.intercept = undefined;
    expect((await b.random(1, 8)).length, 'the call after the loss').toBe(8);
    expect(reader.connects).toBe(2);

    reader.failOnce((a) => a[1] === 0xa4 && !logical(a), 0x6f00);
    await expect(b.reboot(2)).rejects.toBeInstanceOf(StatusWordError);
    expect((await b.random(1, 8)).length, 'the call after the failed reset').toBe(8);
    expect(reader.connects).toBe(3);
    await b.close();
  });

  it('6A80 is the client\'s error only as the answer that gives it meaning (a decipherment\'s padding): from MSE:SET, ENCIPHER or COMPUTE it is the card\'s, 5000 over Mcs', async () => {
    const { engine, se, send, once } = await mcsOverCard();
    expect((await send(1, `${se}/reg`, { 'senv:Cph': { rn: 'g', Calg: 1001, mbs: 1000, kDt: new Uint8Array(16).fill(7) } }, 20002)).rsc).toBe(2001);
    expect((await send(1, `${se}/reg/g`, { 'senv:algP': { nc: new Uint8Array(12) } }, 20001)).rsc).toBe(2001);
    expect((await send(1, `${se}/reg`, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: new Uint8Array(32).fill(7) } }, 20012)).rsc).toBe(2001);
    for (const [what, head, to, root] of [
      ['MSE:SET CT', '002241b8', 'g/encrypt', 'senv:Cph'], ['PSO ENCIPHER', '002a8680', 'g/encrypt', 'senv:Cph'],
      ['MSE:SET DST', '002241b6', 'm/calculateSignature', 'senv:Sgn'], ['PSO COMPUTE', '002a9e9a', 'm/calculateSignature', 'senv:Sgn'],
    ] as const) {
      expect((await send(3, `${se}/reg/${to.split('/')[0]}`, { [root]: { msg: new Uint8Array(3).fill(1) } })).rsc).toBe(2004);
      once(head, 0x6a80);
      expect((await send(2, `${se}/reg/${to}`)).rsc, what).toBe(5000);
    }
    // A decipherment whose padding the card refuses is still the client's (4102).
    once('002a8086', 0x6a80);
    expect((await send(1, `${se}/reg`, { 'senv:Cph': { rn: 'c', Calg: 24, mbs: 1000, kDt: new Uint8Array(16).fill(7) } }, 20002)).rsc).toBe(2001);
    expect((await send(1, `${se}/reg/c`, { 'senv:algP': { iV: new Uint8Array(16) } }, 20001)).rsc).toBe(2001);
    expect((await send(3, `${se}/reg/c`, { 'senv:Cph': { msg: new Uint8Array(32).fill(5) } })).rsc).toBe(2004);
    expect((await send(2, `${se}/reg/c/decrypt`)).rsc, 'bad padding').toBe(4102);
    await engine.close();
  });

  it('6300 (a tag that does not verify) and 6A80 (bad padding) are the client\'s only from a decipherment\'s last link: from ENCIPHER, a MAC computation or a chained link they are the card\'s, 5000 over Mcs', async () => {
    // Short APDUs: a message of 600 bytes goes to the card in chained links and a last one. The card decides a
    // tag or the padding at the end of a decipherment; an ENCIPHER or a MAC computation has neither, and a link
    // with more to come cannot know them yet.
    const { engine, se, send, once } = await mcsOverCard(SHORT_LIMITS);
    for (const [rn, Calg, algP] of [['g', 1001, { nc: new Uint8Array(12) }], ['c', 24, { iV: new Uint8Array(16) }]] as const) {
      expect((await send(1, `${se}/reg`, { 'senv:Cph': { rn, Calg, mbs: 1000, kDt: new Uint8Array(16).fill(7) } }, 20002)).rsc).toBe(2001);
      expect((await send(1, `${se}/reg/${rn}`, { 'senv:algP': algP }, 20001)).rsc).toBe(2001);
    }
    expect((await send(1, `${se}/reg`, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: new Uint8Array(32).fill(7) } }, 20012)).rsc).toBe(2001);
    const card = (sw: string) => [5000, `internal error (ERR_CARD_STATUS ${sw})`];
    const client = [4102, 'authentication failed: tag or MAC does not verify'];
    const cases = [
      // [what, the APDU answered (CLA without its channel, INS, P1, P2), its status word, the operation, what it means]
      ['6300 to PSO ENCIPHER (GCM)', '002a8680', 0x6300, 'g/encrypt', card('6300')],
      ['6300 to PSO COMPUTE (HMAC)', '002a9e9a', 0x6300, 'm/calculateSignature', card('6300')],
      ['6300 to a chained DECIPHER link (GCM)', '102a8086', 0x6300, 'g/decrypt', card('6300')],
      ['6A80 to a chained DECIPHER link (CBC)', '102a8086', 0x6a80, 'c/decrypt', card('6A80')],
      ['6300 to the last DECIPHER link (GCM): the tag', '002a8086', 0x6300, 'g/decrypt', client],
    ] as const;
    const got = [];
    for (const [what, head, sw, to] of cases) {
      const rn = to.split('/')[0]!;
      expect((await send(3, `${se}/reg/${rn}`, { [rn === 'm' ? 'senv:Sgn' : 'senv:Cph']: { msg: new Uint8Array(600).fill(1) } })).rsc, what).toBe(2004);
      once(head, sw);
      const r = await send(2, `${se}/reg/${to}`);
      got.push([what, r.rsc, (r.pc as Record<string, unknown> | undefined)?.['m2m:dbg']]);
    }
    expect(got).toEqual(cases.map(([what, , , , means]) => [what, ...means]));
    await engine.close();
  });

  it('an IV or nonce length the mode does not take is a LengthError whatever the message length (the card refuses it on the first link, chained or not)', async () => {
    const { b } = await openedReader(SHORT_LIMITS);
    const got = [];
    for (const [what, alg, params] of [['CBC PKCS#5, 15-byte IV', 24, { iv: new Uint8Array(15) }], ['CCM, 6-byte nonce', 1003, { nonce: new Uint8Array(6) }], ['GCM, empty nonce', 1001, { nonce: new Uint8Array(0) }]] as const) {
      const k = await b.importKey({ use: 'cipher', algorithm: alg }, 'secret', new Uint8Array(16).fill(3));
      // 32 bytes go in one link, 1,024 in chained links first.
      for (const n of [32, 1024]) got.push([what, n, await b.cipher(alg, k, 'encrypt', params).then((c) => c.final(new Uint8Array(n))).then(() => 'no error', (x: Error) => x.constructor.name)]);
      b.deleteKey(k);
    }
    expect(got.filter(([, , error]) => error !== 'LengthError')).toEqual([]);
    await b.close();
  });

  it('a 6300 from MSE:SET or a reconnect\'s SELECT is that command\'s failure, never a signature or MAC that does not verify (only VERIFY says so)', async () => {
    const msg = new Uint8Array(100).fill(1);
    const macKey = new Uint8Array(32).fill(9);
    const pair = ecdsa('P-256').keygen();
    const mseAnswers6300 = async (reader: InProcessReader) => reader.failOnce((a) => a[1] === 0x22, 0x6300);
    const cases = [
      ['HMAC, MSE:SET answers 6300', 25, mseAnswers6300],
      ['ECDSA, MSE:SET answers 6300', 33, mseAnswers6300],
      ['HMAC, the SELECT of a reconnect answers 6300', 25, async (reader: InProcessReader, b: PcscBackend) => {
        await loseCard(reader, b);
        reader.failOnce((a) => a[1] === SELECT, 0x6300);
      }],
    ] as const;
    const got = [];
    for (const [what, alg, arrange] of cases) {
      const { reader, b } = await openedReader();
      // Keys whose signature the host makes: the card's first command of a verification is MSE:SET.
      const k = alg === 25
        ? await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', macKey.slice())
        : await b.importKey({ use: 'signature', algorithm: 33 }, 'public', pair.publicKey);
      const sig = alg === 25 ? hmac('SHA-256', macKey, msg) : ecdsa('P-256').sign(msg, pair.secretKey, { format: 'raw' });
      const verify = async () => (await b.signature(alg, k, { format: 'raw', prehashed: false })).verify(sig, msg);
      await arrange(reader, b);
      got.push([what, await outcome(verify()), await verify()]);
      await b.close();
    }
    expect(got).toEqual([
      [cases[0][0], { error: 'StatusWordError', command: 'MANAGE SECURITY ENVIRONMENT', sw: 0x6300 }, true],
      [cases[1][0], { error: 'StatusWordError', command: 'MANAGE SECURITY ENVIRONMENT', sw: 0x6300 }, true],
      [cases[2][0], { error: 'StatusWordError', command: 'SELECT', sw: 0x6300 }, true],
    ]);
  });

  it('a key whose deletion failed, or whose write got no answer, is deleted later (before the next slot is taken, at close()): none is left on the card', async () => {
    const putData = (p1: number) => (a: Uint8Array) => a[1] === 0xda && a[2] === p1;
    const { reader, b } = await openedReader();
    const k = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(7));
    // The deletion gets no answer and never ran.
    let armed = true;
    reader.intercept = (a) => {
      if (armed && putData(0x03)(a)) {
        armed = false;
        throw new PcscError('SCardTransmit', 0x8010000a);
      }
      return undefined;
    };
    b.deleteKey(k);
    await new Promise((r) => setTimeout(r, 20));
    expect(reader.store.keys.size, 'still on the card').toBe(1);
    // A write the card carried out whose answer was lost.
    armed = true;
    reader.intercept = (a) => {
      if (armed && putData(0x01)(a)) {
        armed = false;
        reader.os.apdu(a);
        throw new PcscError('SCardTransmit', 0x8010000a);
      }
      return undefined;
    };
    await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(8))).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    // That import deleted the first key before it took a slot; the unanswered key is on the card.
    expect([...reader.store.keys.values()].map((key) => key.secret?.[0])).toEqual([8]);
    const k3 = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(9));
    expect([...reader.store.keys.values()].map((key) => key.secret?.[0]), 'the next import deleted it first').toEqual([9]);
    b.deleteKey(k3);
    await b.close();
    expect(reader.store.keys.size, 'close() waits for the deletion it was given').toBe(0);
  });

  it('a key written whose stamp cannot be read and whose deletion fails too is deleted later (before the next slot is taken): no key is left that no handle names', async () => {
    const { reader, b } = await openedReader();
    const keyInfo = (a: Uint8Array) => a[1] === 0xca && a[2] === DO.KEY;
    const deletion = (a: Uint8Array) => a[1] === 0xda && a[2] === DO.DELETE_KEY;
    reader.intercept = (a) => (keyInfo(a) || deletion(a) ? Uint8Array.of(0x6f, 0x00) : undefined);
    await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(7))).rejects.toThrow(StatusWordError);
    reader.intercept = undefined;
    expect([...reader.store.keys.values()].map((key) => key.secret?.[0]), 'the deletion failed: still on the card').toEqual([7]);
    await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(8));
    expect([...reader.store.keys.values()].map((key) => key.secret?.[0]), 'the next import deleted it first').toEqual([8]);
    await b.close();
  });

  it('a key information whose stamp is not 8 bytes is the card\'s fault: the import fails naming it, and the key it wrote is deleted', async () => {
    const { reader, b } = await openedReader();
    const keyInfo = (a: Uint8Array) => a[1] === 0xca && a[2] === DO.KEY;
    reader.intercept = (a) => (keyInfo(a) ? Uint8Array.of(...tlvs([0x80, u16(25)], [0x81, [1]], [0x83, [1, 2, 3, 4, 5, 6, 7]]), 0x90, 0x00) : undefined);
    await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(7))).rejects.toThrow(/key stamp of 7 bytes, not 8/);
    reader.intercept = undefined;
    expect(reader.store.keys.size, 'deleted').toBe(0);
    await b.close();
  });

  it('a key write answered 6F00, 63xx, 65xx (memory may have changed) or a status word no ISO class defines (garbled) may have left the key: the next import deletes its slot first; 6A80, 6700, 6A84, 6D00, 6E00 or 6400 wrote nothing and the slot is free at once', async () => {
    const got: [string, number, number[]][] = [];
    // [the write's answer, whether the card wrote the key before giving it]
    for (const [sw, wrote] of [
      [0x6f00, true], [0x6f00, false], [0x6581, true], [0x63c0, true], [0x9001, true], [0x1234, true], [0x6a80, false], [0x6700, false], [0x6a84, false], [0x6d00, false], [0x6e00, false], [0x6400, false],
    ] as const) {
      const { reader, b } = await openedReader();
      reader.intercept = (a) => {
        if (a[1] !== 0xda || a[2] !== 0x01) return undefined;
        reader.intercept = undefined;
        if (wrote) reader.os.apdu(a);
        return Uint8Array.of(sw >> 8, sw & 0xff);
      };
      await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(1))).rejects.toThrow();
      const mark = reader.sent.length;
      await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(2));
      const deletions = reader.sent.slice(mark).filter((a) => a[1] === 0xda && a[2] === 0x03).length;
      got.push([`${sw.toString(16)}${wrote ? ' after the write' : ''}`, deletions, [...reader.store.keys.keys()]]);
      await b.close();
    }
    expect(got).toEqual([
      ['6f00 after the write', 1, [1]], ['6f00', 1, [1]], ['6581 after the write', 1, [1]], ['63c0 after the write', 1, [1]],
      ['9001 after the write', 1, [1]], ['1234 after the write', 1, [1]],
      ['6a80', 0, [1]], ['6700', 0, [1]], ['6a84', 0, [1]], ['6d00', 0, [1]], ['6e00', 0, [1]], ['6400', 0, [1]],
    ]);
  });

  it('a status word a GET RESPONSE answers is its own, never the command\'s result; a key generated before it is deleted later, not lost', async () => {
    // A 64-byte response field: a P-256 point needs a GET RESPONSE.
    const { reader, b } = await openedReader({ maxCommandData: 255, maxResponseData: 64 });
    failGetResponse(reader, (a) => a[1] === 0x47, 0x6f00);
    const e = await b.generateKey({ use: 'signature', algorithm: 33 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StatusWordError);
    expect((e as StatusWordError).command).toBe('GET RESPONSE');
    expect(reader.store.keys.size, 'the card made the key').toBe(1);
    // A decipherment whose data a GET RESPONSE refused (6A80) is the card's failure, not bad padding.
    const key = new Uint8Array(16).fill(3), iv = new Uint8Array(16).fill(4);
    const k = await b.importKey({ use: 'cipher', algorithm: 24 }, 'secret', key.slice());
    const sealed = cbc(key, iv, { padding: 'pkcs5' }).encrypt(new Uint8Array(1000).fill(5));
    failGetResponse(reader, (a) => a[1] === 0x2a && a[3] === 0x86, 0x6a80);
    const d = await b.cipher(24, k, 'decrypt', { iv });
    const failed = await Promise.resolve().then(() => d.final(sealed)).catch((x: unknown) => x);
    expect(failed, 'not PaddingError').toBeInstanceOf(StatusWordError);
    reader.intercept = undefined;
    // The card away: imports that never reach it leave nothing to delete later.
    reader.intercept = () => {
      throw new PcscError('SCardTransmit', 0x80100069);
    };
    for (let i = 0; i < 5; i++) await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(i))).rejects.toThrow();
    reader.intercept = undefined;
    const mark = reader.sent.length;
    await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(9));
    expect(reader.sent.slice(mark).filter((a) => a[1] === 0xda && a[2] === 0x03).length, 'deletions sent on return').toBeLessThanOrEqual(2);
    b.deleteKey(k);
    await b.close();
    expect([...reader.store.keys.values()].filter((x) => x.algorithm === 33).length, 'the generated P-256 key was deleted').toBe(0);
  });

  it('6A89 (slot taken) means so only as the key write\'s own answer: from its GET RESPONSE the generated key is on the card and deleted later, from a reconnect\'s SELECT nothing was written; no slot is skipped either way', async () => {
    const cases = [
      // [what answers 6A89, how, the command the error names, reconnects during the call, slots on the card after it]
      ['the GET RESPONSE that fetches the public point', async (reader: InProcessReader) => failGetResponse(reader, (a) => a[1] === 0x47, 0x6a89), 'GET RESPONSE', 0, [1]],
      // A card that answers so for a while: skipping to the next slot would reconnect again, slot after slot.
      ['the SELECT of a reconnect', async (reader: InProcessReader, b: PcscBackend) => {
        await loseCard(reader, b);
        reader.intercept = (a) => (a[1] === SELECT ? Uint8Array.of(0x6a, 0x89) : undefined);
      }, 'SELECT', 1, []],
    ] as const;
    const got = [];
    for (const [what, arrange] of cases) {
      // A 64-byte response field: a P-256 point needs a GET RESPONSE.
      const { reader, b } = await openedReader({ maxCommandData: 255, maxResponseData: 64 });
      await arrange(reader, b);
      const connects = reader.connects;
      const generated = await outcome(b.generateKey({ use: 'signature', algorithm: 33 }).then(() => 'a key handle'));
      const reconnects = reader.connects - connects;
      reader.intercept = undefined;
      const slots = [...reader.store.keys.keys()];
      // The card answers normally again: the next key write takes slot 1, after deleting a key left there.
      const next = await outcome(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(5))
        .then(() => [...reader.store.keys.entries()].map(([ref, key]) => [ref, key.algorithm])));
      await b.close();
      got.push([what, generated, reconnects, slots, next]);
    }
    expect(got).toEqual(cases.map(([what, , command, reconnects, slots]) => [what, { error: 'StatusWordError', command, sw: 0x6a89 }, reconnects, slots, [[1, 25]]]));
  });

  it('6A88 (no key there) frees a slot only as the deletion\'s own answer: a reconnect\'s SELECT answering it sent no deletion, and the key is deleted later, at close() at the latest', async () => {
    const { reader, b } = await openedReader();
    const k = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(7));
    await loseCard(reader, b);
    reader.failOnce((a) => a[1] === SELECT, 0x6a88);
    const deletions = () => reader.sent.filter((a) => a[1] === 0xda && a[2] === 0x03).length;
    b.deleteKey(k);
    await new Promise((r) => setTimeout(r, 20));
    expect({ deletions: deletions(), slots: [...reader.store.keys.keys()] }, 'nothing deleted yet').toEqual({ deletions: 0, slots: [1] });
    await b.close();
    expect({ deletions: deletions(), slots: [...reader.store.keys.keys()] }, 'close() deleted it').toEqual({ deletions: 1, slots: [] });
  });

  it('a card that refuses to open a channel (6A81) is not asked again until a reset: later streams end on channel 0', async () => {
    const { reader, b } = await openedReader();
    reader.failOnce((a) => a[1] === 0x70 && a[2] === 0x00, 0x6a81);
    await servesDigest(b, 70_000);
    await servesDigest(b, 70_000);
    const opens = () => reader.sent.filter((a) => a[1] === 0x70 && a[2] === 0x00).length;
    expect(opens(), 'asked once').toBe(1);
    await b.reboot(2);
    await servesDigest(b, 70_000);
    expect(opens(), 'asked again after the reset').toBe(2);
    await b.close();
  });

  it('a MANAGE CHANNEL open the card carried out (61 01) whose GET RESPONSE failed is no refusal: the stream fails, no channel is asked for again, and close() resets the card, which holds the channel', async () => {
    const { reader, b } = await openedReader();
    // The card opens channel 1; its number was to come by GET RESPONSE.
    failGetResponse(reader, (a) => a[1] === 0x70 && a[2] === 0x00, 0x6f00, (a) => (reader.os.apdu(a), Uint8Array.of(0x61, 0x01)));
    const s = await b.digest(4);
    const update = await outcome(s.update(new Uint8Array(70_000)));
    reader.intercept = undefined;
    // The card holds a channel whose number the session never learnt.
    const held = cardChannels(reader);
    // Nothing is sent on (or asked of) channels then: the next stream ends on channel 0.
    const mark = reader.sent.length;
    await servesDigest(b, 70_000);
    const onChannels = reader.sent.slice(mark).filter((a) => a[1] === 0x70 || (a[0]! & 0x03) !== 0).map(hex);
    await b.close();
    expect({ update, held, onChannels, afterClose: cardChannels(reader) }).toEqual({
      update: { error: 'StatusWordError', command: 'GET RESPONSE', sw: 0x6f00 }, held: [1], onChannels: [], afterClose: [],
    });
  });

  it('6A88 means no object directory yet only as the GET DATA\'s own answer: from the GET RESPONSE fetching the directory, a write fails and takes no object another resource holds', async () => {
    // A 64-byte response field: a directory of three entries needs a GET RESPONSE.
    const { reader, b: first } = await openedReader({ maxCommandData: 255, maxResponseData: 64 });
    const ids = ['sdo-resource-id-0001', 'sdo-resource-id-0002', 'sdo-resource-id-0003', 'sdo-resource-id-0004'];
    const data = (i: number) => new Uint8Array(8).fill(i + 1);
    for (let i = 0; i < 3; i++) await first.objectStore.write(ids[i]!, data(i));
    await first.close();
    const objects = () => [...reader.store.objects.entries()].map(([n, d]) => [n, hex(d)]);
    const before = objects();
    // Another backend: it reads the directory from the card.
    const b = reader.backend();
    await b.open();
    failGetResponse(reader, (a) => a[1] === 0xca && a[2] === 0x02 && a[3] === 0xfe, 0x6a88);
    const write = await outcome(b.objectStore.write(ids[3]!, data(3)));
    reader.intercept = undefined;
    // Nothing written: no other resource's object, no directory that names the new one only.
    expect({ write, objects: objects() }).toEqual({ write: { error: 'StatusWordError', command: 'GET RESPONSE', sw: 0x6a88 }, objects: before });
    // The directory read again, the write takes a free object.
    await b.objectStore.write(ids[3]!, data(3));
    expect(await Promise.all(ids.map(async (id) => hex(await b.objectStore.read(id))))).toEqual(ids.map((_, i) => hex(data(i))));
    await b.close();
  });

  it('shared mode: a key write that got no answer is not swept later (the slot may hold another application\'s key by then)', async () => {
    const reader = new InProcessReader();
    const b = new PcscBackend({ reader: 'in-process', context: (reader as unknown as { context: never }).context, share: 'shared' });
    await b.open();
    reader.intercept = (a) => {
      if (a[1] === 0xda && a[2] === 0x01) {
        reader.intercept = undefined;
        throw new PcscError('SCardTransmit', 0x8010000a);
      }
      return undefined;
    };
    await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(1))).rejects.toThrow(/SCARD_E_TIMEOUT/);
    // Another application writes its key into slot 1, which the card shows free.
    reader.os.apdu(Uint8Array.from([0x00, 0xda, 0x01, 0x01, 0x0a, 0x80, 0x02, 0x00, 0x19, 0x81, 0x01, 0x01, 0x82, 0x01, 0x55]));
    await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(2));
    expect(reader.store.keys.get(1)?.secret?.[0], 'the other application\'s key').toBe(0x55);
    await b.close();
  });

  it('PcscCard.transaction ends the transaction when fn fails, as asked, and reports fn\'s failure when ending fails too (a lost card); a bad disposition begins none', async () => {
    const calls: string[] = [];
    const handle = {
      beginTransaction: async () => void calls.push('begin'),
      endTransaction: async (d: number) => {
        calls.push(`end ${d}`);
        throw new PcscError('SCardEndTransaction', 0x80100003);
      },
      get connected() { return true; },
    };
    const card = PcscCard.open({ constants: { SCARD_LEAVE_CARD: 0, SCARD_RESET_CARD: 1, SCARD_UNPOWER_CARD: 2, SCARD_EJECT_CARD: 3 } } as never, handle as never, 'stand-in', 2, 2);
    await expect(card.transaction(async () => {
      throw new PcscError('SCardTransmit', 0x8010000a);
    }, 'reset')).rejects.toThrow(/SCARD_E_TIMEOUT/);
    // Left begun, the card would stay locked against every other application.
    expect(calls).toEqual(['begin', 'end 1']);
    await expect(card.transaction(async () => 1), 'after a success, the failure to end is reported').rejects.toThrow(/SCARD_E_INVALID_HANDLE/);
    // Checked only at the end, the disposition would fail there with the card still locked and fn run.
    let ran = false;
    await expect(card.transaction(async () => void (ran = true), 'unpowr' as never)).rejects.toThrow(InvalidInputError);
    expect([calls.slice(2), ran]).toEqual([['begin', 'end 0'], false]);
  });

  it('shared mode: a timeout whose clean-up drops the session is reported as the timeout; the transaction ends before the disconnect', async () => {
    const reader = new InProcessReader();
    // The real PcscCard over a stand-in for the addon's handle, which refuses every call after a disconnect as the addon does.
    const calls: string[] = [];
    const constants = { SCARD_LEAVE_CARD: 0, SCARD_RESET_CARD: 1, SCARD_UNPOWER_CARD: 2, SCARD_EJECT_CARD: 3, SCARD_CTL_CODE_BASE: 0 };
    const handle = () => {
      let open = true;
      const call = <T>(name: string, f: () => T | Promise<T>) => {
        calls.push(name);
        return open ? Promise.resolve(f()) : Promise.reject(new PcscError(name, 0x80100003));
      };
      return {
        transmit: (apdu: Uint8Array) => call('SCardTransmit', () => reader.intercept?.(apdu) ?? reader.os.apdu(apdu)),
        beginTransaction: () => call('SCardBeginTransaction', () => undefined),
        endTransaction: () => call('SCardEndTransaction', () => undefined),
        disconnect: (d: number) => call('SCardDisconnect', () => {
          open = false;
          if (d === constants.SCARD_RESET_CARD) reader.os.power('warm');
        }),
        get connected() { return open; },
      };
    };
    const context = { connect: async () => PcscCard.open({ constants } as never, handle() as never, 'stand-in', 2, 2), release: async () => undefined };
    const b = new PcscBackend({ reader: 'stand-in', context: context as never, share: 'shared' });
    await b.open();
    const { s, others } = await holdingChannels(b);
    reader.intercept = (apdu) => {
      const on0 = (apdu[0]! & 0x03) === 0;
      if (on0 && apdu[1] === 0x2a && (apdu[0]! & 0x10) === 0) {
        reader.intercept = (a) => {
          if ((a[0]! & 0x03) === 0 && a[1] === 0xa4) throw new PcscError('SCardTransmit', 0x8010000a);
          return undefined;
        };
        throw new PcscError('SCardTransmit', 0x8010000a);
      }
      return undefined;
    };
    calls.length = 0;
    await expect(s.final()).rejects.toThrow(/SCARD_E_TIMEOUT/);
    reader.intercept = undefined;
    expect(calls.slice(-2)).toEqual(['SCardEndTransaction', 'SCardDisconnect']);
    expect({ channels: cardChannels(reader), streams: reader.streamsOpen() }).toEqual({ channels: [], streams: 0 });
    expect((await b.random(1, 8)).length, 'the next call reconnects').toBe(8);
    for (const o of others) o.abort();
    await b.close();
  });

  it('an update() whose link the card refused ends the stream: final() cannot go on under the same nonce', async () => {
    const { reader, b } = await openedReader();
    const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16).fill(9));
    const s = await b.cipher(1001, k, 'encrypt', { nonce: new Uint8Array(12).fill(1) });
    await s.update(new Uint8Array(70_000));
    let n = 0;
    reader.intercept = (apdu) => {
      if (apdu[1] === 0x2a && (apdu[0]! & 0x10) !== 0 && ++n === 1) {
        // The card drops the chain (another command on the channel), and the link is refused.
        reader.os.apdu(Uint8Array.of(apdu[0]! & 0x03, 0x84, 0, 0, 8));
        return Uint8Array.of(0x6a, 0x80);
      }
      return undefined;
    };
    await expect(s.update(new Uint8Array(70_000))).rejects.toThrow();
    reader.intercept = undefined;
    await expect(s.final()).rejects.toThrow(StateError);
    const session = (b as unknown as { session: { numbers: Set<number>; free: unknown[] } }).session;
    expect(session.numbers.size - session.free.length, 'no channel held').toBe(0);
    await b.close();
  });

  it('an end() the session refused before its turn (closed) still lets abort() zeroize the buffered message', async () => {
    const { LinkStream } = await import('../../src/backends/pcsc/streams.ts');
    const { b } = await openedReader();
    const session = (b as unknown as { session: ConstructorParameters<typeof LinkStream>[0] }).session;
    const s = new LinkStream(session, 1000, { pso: 0x9080, setup: async () => undefined });
    await s.update(new Uint8Array(500).fill(0x55));
    const parts = (s as unknown as { parts: Uint8Array[] }).parts.slice();
    await b.close();
    await expect(s.end(async () => ({ data: new Uint8Array(0), sw: 0x9000 }))).rejects.toThrow();
    s.abort();
    expect(parts.every((p) => p.every((x) => x === 0)), 'the buffered message is zeroized').toBe(true);
  });

  it('the message bytes a link takes from the buffered parts are zeroized there: a part taken whole, and the front of one taken in part', async () => {
    const { LinkStream } = await import('../../src/backends/pcsc/streams.ts');
    const { b } = await openedReader();
    const session = (b as unknown as { session: ConstructorParameters<typeof LinkStream>[0] }).session;
    const s = new LinkStream(session, 1000, { pso: 0x9080, setup: (ch) => ch.setEnvironment(CRT.HT, 4) });
    const parts = () => (s as unknown as { parts: Uint8Array[] }).parts;
    await s.update(new Uint8Array(500).fill(0x55));
    const [whole] = parts();
    // The copy is buffered before the link goes out in the session's turn: caught here, whole.
    const sending = s.update(new Uint8Array(600).fill(0x66));
    const split = parts()[1]!;
    await sending;
    expect(hex(whole!), 'the part the link took whole').toBe('00'.repeat(500));
    expect(hex(split), 'the part the link took the first 500 bytes of').toBe('00'.repeat(500) + '66'.repeat(100));
    expect(hex(await s.finish())).toBe(hex(sha256(Uint8Array.of(...new Uint8Array(500).fill(0x55), ...new Uint8Array(600).fill(0x66)))));
    await b.close();
  });
});

describe('PC/SC answers that the card cannot have meant are card faults (ApduError), never results', () => {
  const resp = (data: ArrayLike<number>, sw = 0x9000) => Uint8Array.from([...Array.from(data), sw >> 8, sw & 0xff]);
  /** The last (unchained) command of a PSO with these P1-P2. */
  const lastPso = (a: Uint8Array, p1p2: number) => a[1] === 0x2a && (a[0]! & 0x10) === 0 && ((a[2]! << 8) | a[3]!) === p1p2;
  const generate = (a: Uint8Array) => a[1] === 0x47 && a[2] === 0x80;
  const memory = (a: Uint8Array) => a[1] === 0xca && a[2] === 0xdf && a[3] === 0x02;
  const opensChannel = (a: Uint8Array) => a[1] === 0x70 && a[2] === 0x00;

  it('a digest, MAC or signature of the wrong length, and data answered to a VERIFY, are refused', async () => {
    const { reader, b } = await openedReader();
    const hm = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', randomBytes(32));
    const cm = await b.importKey({ use: 'signature', algorithm: 49 }, 'secret', randomBytes(16));
    const ec = await b.generateKey({ use: 'signature', algorithm: 33 });
    const msg = Uint8Array.of(1, 2, 3);
    const sign = (alg: 25 | 49 | 33, k: typeof hm, format: 'raw' | 'der' = 'raw') => async () => (await b.signature(alg, k, { format, prehashed: false })).sign(msg);
    // [what, P1-P2 of the command answered, bytes answered, operation]
    const cases: [string, number, number, () => Promise<unknown>][] = [
      ['SHA-256, 31 bytes', 0x9080, 31, async () => (await b.digest(4)).final(msg)],
      ['SHA-256, 33 bytes', 0x9080, 33, async () => (await b.digest(4)).final(msg)],
      ['SHA-512, 32 bytes', 0x9080, 32, async () => (await b.digest(6)).final(msg)],
      ['HMAC-SHA-256, 48 bytes', 0x9e9a, 48, sign(25, hm)],
      ['CMAC, 32 bytes', 0x9e9a, 32, sign(49, cm)],
      ['ECDSA P-256 r || s, 63 bytes', 0x9e9a, 63, sign(33, ec)],
      ['ECDSA P-256 DER, 64 bytes that are no DER', 0x9e9a, 64, sign(33, ec, 'der')],
      ['HMAC VERIFY answering 1 byte', 0x00a8, 1, async () => (await b.signature(25, hm, { format: 'raw', prehashed: false })).verify(new Uint8Array(32), msg)],
    ];
    for (const [what, p1p2, n, run] of cases) {
      reader.intercept = (a) => (lastPso(a, p1p2) ? resp(new Uint8Array(n).fill(0x11)) : undefined);
      await expect(run(), what).rejects.toBeInstanceOf(ApduError);
    }
    // A 9000 forged for the MSE:SET of a signature leaves the card's HMAC environment: its MAC is no P-256 signature.
    await sign(25, hm)();
    reader.intercept = (a) => (a[1] === 0x22 && a[3] === 0xb6 ? resp([]) : undefined);
    await expect(sign(33, ec)(), 'an HMAC as a signature').rejects.toBeInstanceOf(ApduError);
    reader.intercept = undefined;
    await servesDigest(b, 100);
    await b.close();
  });

  it('cipher output of the wrong length for its input is refused and zeroized; an AEAD decipherment releases nothing before its tag', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    const gk = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', randomBytes(16));
    const ck = await b.importKey({ use: 'cipher', algorithm: 24 }, 'secret', randomBytes(16));
    const iv = randomBytes(16);
    const ct = await (await b.cipher(24, ck, 'encrypt', { iv })).final(new Uint8Array(32).fill(1));
    expect(ct.length).toBe(48);
    const given: Uint8Array[] = [];
    const answer = (f: (a: Uint8Array) => Uint8Array | undefined) => (a: Uint8Array) => {
      const r = f(a);
      if (r) given.push(r);
      return r;
    };
    const cases: [string, (a: Uint8Array) => Uint8Array | undefined, () => Promise<Uint8Array>][] = [
      ['GCM, 100 bytes enciphered to 115', (a) => (lastPso(a, 0x8680) ? reader.os.apdu(a).slice(1) : undefined),
        async () => (await b.cipher(1001, gk, 'encrypt', { nonce: randomBytes(12) })).final(new Uint8Array(100))],
      ['GCM decipherment answering plaintext before its last link', (a) => (a[1] === 0x2a && a[0]! & 0x10 ? Uint8Array.of(5, 5, 5, ...reader.os.apdu(a)) : undefined),
        async () => (await b.cipher(1001, gk, 'decrypt', { nonce: randomBytes(12) })).update(randomBytes(600))],
      ['CBC PKCS#5, 48 bytes deciphered to 48', (a) => (lastPso(a, 0x8086) ? resp(new Uint8Array(48).fill(5)) : undefined),
        async () => (await b.cipher(24, ck, 'decrypt', { iv })).final(ct)],
      ['CBC PKCS#5, 32 bytes enciphered to 32', (a) => (lastPso(a, 0x8680) ? resp(new Uint8Array(32).fill(5)) : undefined),
        async () => (await b.cipher(24, ck, 'encrypt', { iv })).final(new Uint8Array(32))],
    ];
    for (const [what, f, run] of cases) {
      given.length = 0;
      reader.intercept = answer(f);
      await expect(run(), what).rejects.toBeInstanceOf(ApduError);
      expect(given.length, what).toBeGreaterThan(0);
      expect(given.every((r) => r.subarray(0, r.length - 2).every((x) => x === 0)), `${what}: zeroized`).toBe(true);
    }
    reader.intercept = undefined;
    await new Promise((r) => setTimeout(r, 20));
    expect(reader.streamsOpen()).toBe(0);
    await servesDigest(b, 600);
    await b.close();
  });

  it('cipher output running ahead of the input sent so far is refused at the update, zeroized, and ends the stream: no later link, no final()', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    const ck = await b.importKey({ use: 'cipher', algorithm: 24 }, 'secret', randomBytes(16));
    const chainedPso = (a: Uint8Array) => a[1] === 0x2a && (a[0]! & 0x10) !== 0;
    const extra = new Uint8Array(200).fill(7);
    const holdsExtra = (a: Uint8Array) => a.some((_, i) => i + 16 <= a.length && a.subarray(i, i + 16).every((x) => x === 7));
    for (const direction of ['encrypt', 'decrypt'] as const) {
      const given: Uint8Array[] = [];
      // The first of the update's two links answered with 200 bytes more than the card gave (496 in all):
      // within what one link may bring back, beyond what the 600 bytes given allow in all.
      reader.intercept = (a) => {
        if (!chainedPso(a) || given.length) return undefined;
        const r = reader.os.apdu(a);
        given.push(Uint8Array.of(...r.subarray(0, r.length - 2), ...extra, 0x90, 0x00));
        return given[0];
      };
      const s = await b.cipher(24, ck, direction, { iv: randomBytes(16) });
      const what = direction === 'encrypt' ? 'ciphertext' : 'plaintext';
      const spy = spyUint8Arrays();
      try {
        await expect(s.update(new Uint8Array(600)), direction).rejects.toThrow(new ApduError(`the card returned 696 bytes of ${what} so far for 600 bytes of input (0 to 600 expected)`));
      } finally {
        spy.stop();
      }
      expect(spy.made.filter(holdsExtra).length, `${direction}: no copy of the refused output kept`).toBe(0);
      reader.intercept = undefined;
      expect(given[0]!.subarray(0, given[0]!.length - 2).every((x) => x === 0), `${direction}: zeroized`).toBe(true);
      const sent = reader.sent.length;
      await expect(s.update(new Uint8Array(600)), `${direction}: a later update`).rejects.toThrow(/already finished/);
      await expect(s.final(new Uint8Array(16)), `${direction}: final()`).rejects.toThrow(/already finished/);
      await new Promise((r) => setTimeout(r, 20));
      expect(reader.sent.slice(sent).filter((a) => a[1] === 0x2a), `${direction}: no PSO after the refusal`).toEqual([]);
      expect(reader.streamsOpen(), `${direction}: the card's context ended`).toBe(0);
    }
    await servesDigest(b, 600);
    await b.close();
  });

  it('keys without a usable public point and memory figures that cannot be are refused; a generated key is not left in its slot', async () => {
    const { reader, b } = await openedReader();
    const template = (point: number[]) => [0x7f, 0x49, point.length + 2, 0x86, point.length, ...point];
    const ec = { use: 'signature', algorithm: 33 } as const;
    for (const [spec, data] of [
      [ec, []], [ec, [0x7f, 0x49, 0]], [ec, template([4])], [ec, template([4, ...randomBytes(64)]).slice(0, -1)],
      [ec, template([...randomBytes(64)])], [ec, template([2, ...randomBytes(64)])], [ec, template([4, ...randomBytes(65)])],
      [{ use: 'signature', algorithm: 25 }, template([4])],
    ] as const) {
      reader.intercept = (a) => (generate(a) ? (reader.os.apdu(a), resp(data)) : undefined);
      await expect(b.generateKey(spec), `generate ${spec.algorithm}: ${hex(Uint8Array.from(data)).slice(0, 16)}`).rejects.toBeInstanceOf(ApduError);
      expect(reader.store.keys.size, 'the key the card made is deleted').toBe(0);
    }
    reader.intercept = undefined;
    const stored = await b.storeKey(await b.generateKey(ec));
    const info = (a: Uint8Array) => a[1] === 0xca && a[2] === 0x01;
    // Each with the right algorithm and kind where the point is what is wrong; then no kind, or one of 2 bytes.
    for (const data of [[0x80, 2, 0, 0x21, 0x81, 1, 1], [0x80, 2, 0, 0x21, 0x81, 1, 1, 0x86, 1, 4], [0x80, 2, 0, 0x21, 0x81, 1, 1, 0x86, 64, ...randomBytes(64)], [0x81, 1, 1],
      [0x80, 2, 0, 0x21], [0x80, 2, 0, 0x21, 0x81, 2, 1, 0], [0x80, 2, 0, 0x21, 0x81, 1, 3]]) {
      reader.intercept = (a) => (info(a) ? resp(data) : undefined);
      await expect(b.loadKey(ec, stored), `load: ${hex(Uint8Array.from(data)).slice(0, 16)}`).rejects.toBeInstanceOf(ApduError);
    }
    // A slot that holds a key for another algorithm is a stale reference, not a card fault: the key is lost, its uses refused.
    const use = async (k: Awaited<ReturnType<typeof b.loadKey>>) => (await b.signature(33, k, { format: 'raw', prehashed: false })).sign(Uint8Array.of(1));
    reader.intercept = (a) => (info(a) ? resp([0x80, 2, 0, 0x22]) : undefined);
    await expect(use(await b.loadKey(ec, stored))).rejects.toThrow(/holds a key for another algorithm/);
    // Nor one that holds a public key where the reference names a secret one (a verify-only point).
    reader.intercept = (a) => (info(a) ? (reader.os.apdu(a), resp([0x80, 2, 0, 0x21, 0x81, 1, 2])) : undefined);
    const verifyOnly = await b.loadKey(ec, stored);
    reader.intercept = undefined;
    await expect(use(verifyOnly)).rejects.toThrow(/holds a public key, the reference names a secret one/);
    // And the other way round: a reference naming a public key where the slot holds a secret one.
    const asPublic = await b.loadKey(ec, { ...stored, kind: 'public' });
    await expect(use(asPublic)).rejects.toThrow(/holds a secret key, the reference names a public one/);
    // Nor one whose information has no stamp where the reference names one (a card that forgot it, or another card's key).
    reader.intercept = (a) => {
      if (!info(a)) return undefined;
      const r = reader.os.apdu(a);
      const unstamped = decodeTlvs(r.subarray(0, r.length - 2)).filter((t) => t.tag !== 0x83);
      return Uint8Array.of(...tlvs(...unstamped.map((t) => [t.tag, t.value] as [number, Uint8Array])), 0x90, 0x00);
    };
    const unstamped = await b.loadKey(ec, stored);
    reader.intercept = undefined;
    await expect(use(unstamped)).rejects.toThrow(/holds another key than the one this reference names/);
    reader.intercept = undefined;
    await expect(b.loadKey(ec, stored), 'the real slot loads').resolves.toBeTruthy();
    for (const data of [[], [0, 0, 1, 0], new Array(7).fill(0), new Array(9).fill(0), [0, 0, 0, 1, 0, 0, 0, 2]]) {
      reader.intercept = (a) => (memory(a) ? resp(data) : undefined);
      await expect(b.memoryInfo(), `memory: ${data.length} bytes`).rejects.toBeInstanceOf(ApduError);
    }
    reader.intercept = undefined;
    expect((await b.memoryInfo()).total).toBeGreaterThan(0);
    await b.close();
  });

  it('MANAGE CHANNEL answering channel 0, 20 or one the session holds is refused; nothing is sent on that channel, and streams still end right', async () => {
    for (const [what, channel] of [['0', () => 0], ['20', () => 20], ['a channel held', (n: number) => (n === 1 ? undefined : 1)]] as const) {
      const { reader, b } = await openedReader(SHORT_LIMITS);
      let opens = 0;
      reader.intercept = (a) => {
        if (!opensChannel(a)) return undefined;
        const n = channel(++opens);
        return n === undefined ? undefined : resp([n]);
      };
      const first = await b.digest(4);
      const m1 = randomBytes(600);
      if (what === 'a channel held') await first.update(m1.subarray(0, 300));
      const s = await b.digest(4);
      const mark = reader.sent.length;
      await expect(s.update(randomBytes(600)), what).rejects.toBeInstanceOf(ApduError);
      expect(reader.sent.slice(mark).map(hex), what).toEqual(['0070000001']);
      // The card is asked for no channel again: a stream buffers and ends on channel 0; one holding its channel ends on it.
      await servesDigest(b, 600);
      await first.update(m1.subarray(what === 'a channel held' ? 300 : 0));
      expect(hex(await first.final()), what).toBe(hex(sha256(m1)));
      expect(opens, what).toBe(what === 'a channel held' ? 2 : 1);
      await b.close();
    }
  });

  it('over Mcs each is an internal error (5000) with a short m2m:dbg, not a refused request (4005)', async () => {
    const { McsClient, McsError } = await import('../../src/index.ts');
    const reader = new InProcessReader(SHORT_LIMITS);
    const engine = await McsEngine.create({ backends: [reader.backend()] });
    const c = new McsClient(engine, 'CAE1');
    await c.register();
    let lost = false;
    const cases: [string, (a: Uint8Array) => Uint8Array | undefined, () => Promise<unknown>][] = [
      ['a digest of 31 bytes', (a) => (lastPso(a, 0x9080) ? resp(new Uint8Array(31)) : undefined), async () => (await (await c.hash({ algorithm: 4 })).update(Uint8Array.of(1))).calculate()],
      ['memory figures of 4 bytes', (a) => (memory(a) ? resp([0, 0, 1, 0]) : undefined), () => c.memory()],
      ['a key pair with an empty 7F49', (a) => (generate(a) ? (reader.os.apdu(a), resp([0x7f, 0x49, 0])) : undefined), async () => (await c.signature({ algorithm: 33 })).generateKey()],
      // The card is lost (the session drops), then answers the reconnect's SELECT with an FCI without A5.
      ['an FCI without A5 at a reconnect', (a) => {
        if (!lost && lastPso(a, 0x9080)) {
          lost = true;
          throw new ShortResponseError(1);
        }
        return lost && a[1] === SELECT ? resp([0x6f, 0x08, 0x84, 0x06, 0xf0, 0x53, 0x45, 0x4e, 0x56, 0x01]) : undefined;
      }, async () => {
        const h = await (await c.hash({ algorithm: 4 })).update(Uint8Array.of(1));
        await expect(h.calculate()).rejects.toMatchObject({ rsc: 5000, message: 'internal error (ERR_PCSC short response: card removed or reader failure)' });
        return h.calculate();
      }],
    ];
    for (const [what, answer, run] of cases) {
      reader.intercept = answer;
      const e = await run().then(() => undefined, (x: unknown) => x);
      expect(e, what).toBeInstanceOf(McsError);
      expect([(e as InstanceType<typeof McsError>).rsc, (e as Error).message], what).toEqual([5000, 'internal error (ERR_APDU)']);
    }
    reader.intercept = undefined;
    await engine.close();
  });
});

describe('a card key reference names one key: the slot, and the stamp the card drew when it wrote the key', () => {
  it('a key deleted since, or another written into its slot (same algorithm and kind), loads as a lost key: every use refused, its reference kept, its slot left alone; a reference without a stamp (an earlier senv) still loads', async () => {
    const { reader, b } = await openedReader();
    const hmacSpec = { use: 'signature', algorithm: 25 } as const;
    const key = await b.importKey(hmacSpec, 'secret', new Uint8Array(32).fill(5));
    const stored = await b.storeKey(key);
    expect(stored.form === 'reference' ? stored.ref : '', 'serial:slot:stamp').toMatch(/^[0-9A-F]{16}:\d{1,3}:[0-9A-F]{16}$/);
    if (stored.form !== 'reference') throw new Error('a card key is stored as a reference');
    const ref = stored.ref;
    const slot = Number(ref.split(':')[1]);
    await expect(b.loadKey(hmacSpec, stored), 'the same key').resolves.toBeTruthy();
    // Replaced: the same algorithm and kind, another key (another application deleted it and wrote its own).
    const old = reader.store.keys.get(slot)!;
    reader.store.keys.set(slot, { ...old, secret: new Uint8Array(32).fill(6), stamp: newStamp() });
    const mac = async (k: Awaited<ReturnType<typeof b.loadKey>>, on = b) => (await on.signature(25, k, { format: 'raw', prehashed: false })).sign(Uint8Array.of(1));
    const replaced = await b.loadKey(hmacSpec, stored);
    await expect(mac(replaced)).rejects.toThrow(new RegExp(`^card slot ${slot} holds another key than the one this reference names`));
    await expect(mac(replaced)).rejects.toBeInstanceOf(StateError);
    expect(await b.storeKey(replaced), 'the reference kept, for the key written back or the right card').toEqual(stored);
    const foreign = reader.store.keys.get(slot)!;
    reader.sent.length = 0;
    b.deleteKey(replaced);
    await b.close();
    expect(reader.sent.filter((a) => a[1] === INS.PUT_DATA), 'no deletion sent for a lost key').toEqual([]);
    expect(reader.store.keys.get(slot), 'the key written since stays').toBe(foreign);
    const again = reader.backend();
    await again.open();
    await expect(again.loadKey(hmacSpec, { ...stored, ref: ref.split(':').slice(0, 2).join(':') }), 'a reference of an earlier senv: slot only').resolves.toBeTruthy();
    reader.store.keys.delete(slot);
    await expect(mac(await again.loadKey(hmacSpec, stored), again)).rejects.toThrow(new RegExp(`^card slot ${slot} holds no key: the key this reference names was deleted`));
    await expect(mac(await again.loadKey(hmacSpec, { ...stored, ref: ref.split(':').slice(0, 2).join(':') }), again), 'slot only').rejects.toThrow(/holds no key/);
    // The emptied slot takes no new key while the lost handle lives (a backend opened after the deletion
    // sees it free): on a card without stamps the next run would load that key by the old reference.
    await again.close();
    const b2 = reader.backend();
    await b2.open();
    const lostKey = await b2.loadKey(hmacSpec, stored);
    await expect(mac(lostKey, b2)).rejects.toThrow(/holds no key/);
    const fresh = (await b2.storeKey(await b2.importKey(hmacSpec, 'secret', new Uint8Array(32).fill(9)))) as { ref: string };
    expect(Number(fresh.ref.split(':')[1]), 'another slot').not.toBe(slot);
    // A second handle of the same lost key (a second resource naming it): deleting it leaves the slot held by the first.
    b2.deleteKey(await b2.loadKey(hmacSpec, stored));
    const still = (await b2.storeKey(await b2.importKey(hmacSpec, 'secret', new Uint8Array(32).fill(11)))) as { ref: string };
    expect(Number(still.ref.split(':')[1]), 'still another slot while the first handle lives').not.toBe(slot);
    // Once the lost key's resource is gone, the emptied slot takes keys again in the same run.
    b2.deleteKey(lostKey);
    const after = (await b2.storeKey(await b2.importKey(hmacSpec, 'secret', new Uint8Array(32).fill(10)))) as { ref: string };
    expect(Number(after.ref.split(':')[1]), 'the emptied slot, free again').toBe(slot);
    for (const bad of [`${ref.split(':')[0]}:0`, `${ref.split(':')[0]}:255`, `${ref.split(':')[0]}:01`, `${ref}:x`, `${ref.split(':').slice(0, 2).join(':')}:abc`]) {
      await expect(b2.loadKey(hmacSpec, { ...stored, ref: bad }), bad).rejects.toThrow(/not serial:slot\[:stamp\]/);
    }
    // Another card's reference is no lost key: the wrong card is refused outright.
    await expect(b2.loadKey(hmacSpec, { ...stored, ref: `0000000000000000:${slot}` })).rejects.toThrow(/key reference is for card 0000000000000000/);
    await b2.close();
  });

  it('over Mcs with a data directory: a key gone from its slot between runs no longer stops the SE from loading; its resource answers 4005 naming the slot at use, the others serve, and its DELETE leaves the slot alone', async () => {
    const reader = new InProcessReader();
    const dataDir = await mkdtemp(join(tmpdir(), 'senv-lost-'));
    const masterKey = randomBytes(32);
    try {
      let engine = await McsEngine.create({ backends: [reader.backend()], dataDir, masterKey });
      let s = new Session(engine, 'CAE1');
      await s.register();
      const kA = randomBytes(32), kB = randomBytes(32), m = b64(Uint8Array.of(1, 2, 3));
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'a', Salg: 25, kDt: b64(kA) } }), 2001, 'a');
      ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'b', Salg: 25, kDt: b64(kB) } }), 2001, 'b');
      const slots = [...reader.store.keys.keys()];
      expect(slots.length).toBe(2);
      await engine.close();
      // Between runs another application empties one slot and writes its own key there.
      const [slotA] = slots.filter((n) => hex(reader.store.keys.get(n)!.secret!) === hex(kA));
      reader.store.keys.set(slotA!, { ...reader.store.keys.get(slotA!)!, secret: randomBytes(32), stamp: newStamp() });
      const foreign = reader.store.keys.get(slotA!)!;
      engine = await McsEngine.create({ backends: [reader.backend()], dataDir, masterKey });
      s = new Session(engine, 'CAE1');
      const mac = (rn: string) => s.retrieve(s.path('reg', rn, 'calculateSignature'));
      ok(await s.update(s.path('reg', 'b'), { 'senv:Sgn': { msg: m } }), 2004, 'message for b');
      expect(body(ok(await mac('b'), 2000, 'b signs'), 'senv:Sgn').Sgn).toBe(b64(hmac('SHA-256', kB, Uint8Array.of(1, 2, 3))));
      ok(await s.update(s.path('reg', 'a'), { 'senv:Sgn': { msg: m } }), 2004, 'message for a');
      const gone = await mac('a');
      expect([gone.rsc, gone.pc?.['m2m:dbg']], 'a\'s key is gone: not allowed in its state').toEqual([4005, `card slot ${slotA} holds another key than the one this reference names (written since)`]);
      ok(await s.retrieve(s.path('reg', 'a')), 2000, 'a is still there to read');
      ok(await s.delete(s.path('reg', 'a')), 2002, 'and to delete');
      await engine.close();
      expect(reader.store.keys.get(slotA!), 'the key written since stays').toBe(foreign);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('the stamp of a key just written is read twice: one garbled answer is refused as a card fault and the key deleted, never taken as the key\'s name', async () => {
    const { reader, b } = await openedReader();
    const spec = { use: 'signature', algorithm: 25 } as const;
    for (const write of [() => b.importKey(spec, 'secret', new Uint8Array(32).fill(5)), () => b.generateKey({ use: 'signature', algorithm: 26 })]) {
      let reads = 0;
      reader.intercept = (a) => {
        if (a[1] !== INS.GET_DATA || a[2] !== 0x01 || reads++ > 0) return undefined;
        // The card's answer with one bit of the stamp (tag 83, the key information's last object) flipped.
        const real = reader.os.apdu(a);
        real[real.length - 3]! ^= 0x01;
        return real;
      };
      await expect(write()).rejects.toThrow(/the card gave two key stamps for the key it just wrote into slot \d+/);
      reader.intercept = undefined;
      expect(reader.store.keys.size, 'the key written is deleted').toBe(0);
    }
    // Read right, the key is the card's and works.
    const key = await b.importKey(spec, 'secret', new Uint8Array(32).fill(5));
    const s = await b.signature(25, key, { format: 'raw', prehashed: false });
    expect(await s.sign(Uint8Array.of(1))).toEqual(hmac('SHA-256', new Uint8Array(32).fill(5), Uint8Array.of(1)));
    b.deleteKey(key);
    await b.close();
    expect(reader.store.keys.size).toBe(0);
  });

  it('shared mode: a slot another application rewrote between the two reads of the new key\'s stamp keeps that application\'s key', async () => {
    const reader = new InProcessReader();
    const b = new PcscBackend({ reader: 'in-process', context: (reader as unknown as { context: never }).context, share: 'shared' });
    await b.open();
    let reads = 0;
    reader.intercept = (a) => {
      if (a[1] === INS.GET_DATA && a[2] === 0x01 && ++reads === 2) {
        // Before the second read: the other application deleted the key and wrote its own there.
        const slot = a[3]!;
        reader.store.keys.set(slot, { ...reader.store.keys.get(slot)!, secret: new Uint8Array(32).fill(6), stamp: newStamp() });
      }
      return undefined;
    };
    await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(5))).rejects.toThrow(/two key stamps/);
    reader.intercept = undefined;
    expect([...reader.store.keys.values()].map((k) => k.secret?.[0]), 'the other application\'s key stays').toEqual([6]);
    await b.close();
  });

  it('during a session too: an operation under a key whose slot was rewritten or emptied since (shared mode) is refused by the card (6A88), never run under the other key: a StateError naming the slot, as a lost key\'s use after a restart', async () => {
    const { reader, b } = await openedReader();
    const spec = { use: 'signature', algorithm: 25 } as const;
    const mine = new Uint8Array(32).fill(5), theirs = new Uint8Array(32).fill(6), m = randomBytes(40);
    const key = await b.importKey(spec, 'secret', mine);
    const sign = async () => {
      const s = await b.signature(25, key, { format: 'raw', prehashed: false });
      await s.update(m);
      return s.sign();
    };
    expect(await sign()).toEqual(hmac('SHA-256', mine, m));
    const slot = Number(((await b.storeKey(key)) as { ref: string }).ref.split(':')[1]);
    const ours = reader.store.keys.get(slot)!;
    // Another application deleted the key and wrote its own there; the channel's environment (MSE:SET) is the one set before.
    reader.store.keys.set(slot, { ...ours, secret: theirs, stamp: newStamp() });
    const lost = new RegExp(`^card slot ${slot} no longer holds the key this reference names`);
    await expect(sign()).rejects.toThrow(lost);
    await expect(sign()).rejects.toBeInstanceOf(StateError);
    // The card's answer decides each time (a garbled one must not end a key still there): ours back, it signs.
    reader.store.keys.set(slot, ours);
    expect(await sign()).toEqual(hmac('SHA-256', mine, m));
    reader.store.keys.set(slot, { ...ours, secret: theirs, stamp: newStamp() });
    // A 6A88 to a later link than the first, where the card looks the key up, stays the card's fault.
    reader.intercept = (a) => (a[1] === INS.PSO && (a[0]! & 0x10) === 0 ? Uint8Array.of(0x6a, 0x88) : undefined);
    const long = await b.signature(25, key, { format: 'raw', prehashed: false });
    reader.store.keys.set(slot, ours);
    await expect(long.sign(randomBytes(70_000)), 'two links').rejects.toMatchObject({ sw: 0x6a88 });
    reader.intercept = undefined;
    reader.store.keys.set(slot, { ...ours, secret: theirs, stamp: newStamp() });
    // Nor is the other application's key deleted with ours: the deletion carries the stamp too.
    const foreign = reader.store.keys.get(slot)!;
    b.deleteKey(key);
    // A cipher and an ECDSA signature whose slots were emptied: the same error, whatever link the card refused at.
    const aes = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16).fill(1));
    const ec = await b.generateKey({ use: 'signature', algorithm: 33 });
    const refs = [aes, ec].map(async (k) => Number(((await b.storeKey(k)) as { ref: string }).ref.split(':')[1]));
    for (const ref of await Promise.all(refs)) reader.store.keys.delete(ref);
    const enc = await b.cipher(1001, aes, 'encrypt', { nonce: new Uint8Array(12) });
    await expect(enc.final(randomBytes(20))).rejects.toThrow(/no longer holds the key/);
    const sig = await b.signature(33, ec, { format: 'raw', prehashed: false });
    await expect(sig.sign(randomBytes(100))).rejects.toThrow(/no longer holds the key/);
    await b.close();
    expect(reader.store.keys.get(slot), 'the key another application wrote stays').toBe(foreign);
  });
});

describe('an answer the host refuses ends the chain it belongs to', () => {
  it('a bare 9000 to the last link (output of the wrong length, digest, MAC or signature missing) leaves no chain open: the next operation on that channel is right', async () => {
    const { reader, b } = await openedReader(SHORT_LIMITS);
    // Three streams hold the logical channels: what follows runs on channel 0, which no stream owns.
    const held = [];
    for (let i = 0; i < 3; i++) {
      const s = await b.digest(4);
      await s.update(randomBytes(300));
      held.push(s);
    }
    const lastLink = (a: Uint8Array) => a[1] === INS.PSO && (a[0]! & 0x10) === 0;
    const bare = () => {
      reader.intercept = (a) => (lastLink(a) ? ((reader.intercept = undefined), Uint8Array.of(0x90, 0x00)) : undefined);
    };
    // Ended on the card by the failed call itself, not left for the next command there (whose 6883 and retry would hide it).
    const chainOn0 = () => (reader.os as unknown as { channels: { chain: unknown }[] }).channels[0]!.chain;
    const key = randomBytes(16), iv = randomBytes(16), m = randomBytes(32);
    const cbcKey = await b.importKey({ use: 'cipher', algorithm: 24 }, 'secret', key);
    bare();
    await expect((await b.cipher(24, cbcKey, 'encrypt', { iv })).final(randomBytes(600))).rejects.toBeInstanceOf(ApduError);
    expect(chainOn0(), 'chain on channel 0 after the refused encryption').toBeNull();
    expect(await (await b.cipher(24, cbcKey, 'encrypt', { iv })).final(m), 'the next encryption').toEqual(cbc(key, iv).encrypt(m));
    bare();
    await expect((async () => { const d = await b.digest(4); await d.update(randomBytes(600)); return d.final(); })()).rejects.toBeInstanceOf(ApduError);
    expect(chainOn0(), 'chain on channel 0 after the refused digest').toBeNull();
    const d = await b.digest(4);
    await d.update(m);
    expect(await d.final(), 'the next digest').toEqual(sha256(m));
    const macKey = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', key);
    bare();
    await expect((async () => { const s = await b.signature(25, macKey, { format: 'der', prehashed: false }); await s.update(randomBytes(600)); return s.sign(); })()).rejects.toBeInstanceOf(ApduError);
    expect(chainOn0(), 'chain on channel 0 after the refused MAC').toBeNull();
    const s = await b.signature(25, macKey, { format: 'der', prehashed: false });
    await s.update(m);
    expect(await s.sign(), 'the next MAC').toEqual(hmac('SHA-256', key, m));
    for (const h of held) h.abort();
    await b.close();
  });
});

describe('the APDU log', () => {
  it('shows an AEAD nonce and AAD (MSE:SET) and a MAC to verify (PSO VERIFY) as lengths, as it shows the message', async () => {
    const lines: string[] = [];
    const reader = new InProcessReader();
    const b = reader.backend((l) => lines.push(l));
    await b.open();
    const nonce = randomBytes(12), aad = randomBytes(24), key = randomBytes(16), m = randomBytes(40);
    const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', key);
    expect(await (await b.cipher(1001, k, 'encrypt', { nonce, aad })).final(m)).toEqual(gcm(key, nonce, aad).encrypt(m));
    const h = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', key);
    const mac = hmac('SHA-256', key, m);
    const v = await b.signature(25, h, { format: 'raw', prehashed: false });
    await v.update(m);
    expect(await v.verify(mac)).toBe(true);
    await b.close();
    const log = lines.join('\n');
    for (const [what, x] of [['nonce', nonce], ['AAD', aad], ['MAC', mac]] as const) expect(log.includes(hex(x)), `${what} in the log`).toBe(false);
    expect(log).toMatch(/bytes masked/);
  });
});

describe('a full card', () => {
  it('answers 5207 (not enough memory on this SE), as a full software SE does: its memory (6A84), its key slots, its data object numbers', async () => {
    const { reader, b } = await openedReader();
    const engine = await McsEngine.create({ backends: [b] });
    const s = new Session(engine, 'CAE1');
    await s.register();
    const r = await s.send(1, s.seId, { 'senv:Sdo': { rn: 'big', msg: new Uint8Array(300_000) } }, 20009, true);
    expect([r.rsc, r.pc?.['m2m:dbg']]).toEqual([5207, 'not enough memory on this SE: the card has no room for 300000 bytes of data']);
    // Every slot taken: by the backend itself, as another application's keys would take them.
    for (let ref = 1; ref < 255; ref++) if (!reader.store.keys.has(ref)) reader.store.keys.set(ref, { algorithm: 25, kind: 'secret', secret: new Uint8Array(32), stamp: newStamp() });
    const key = await s.send(1, s.seId, { 'senv:Sgn': { rn: 'mac', Salg: 25 } }, 20012, true);
    expect(key.rsc, 'a key into a card with no free slot').toBe(2001);
    const gen = await s.send(2, `${s.path('reg', 'mac')}/generateKey`, undefined, undefined, true);
    expect([gen.rsc, gen.pc?.['m2m:dbg']]).toEqual([5207, 'not enough memory on this SE: the card has no room for another key (every key slot is in use)']);
    await engine.close();
    await b.close();
    // The card's own refusal of a key (6A84), the backend's map of slots showing room.
    const fresh = await openedReader();
    fresh.reader.intercept = (a) => (a[1] === INS.PUT_DATA || a[1] === INS.GENERATE_KEY_PAIR ? Uint8Array.of(0x6a, 0x84) : undefined);
    await expect(fresh.b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16))).rejects.toMatchObject({ name: 'DeviceFullError', message: 'the card has no room for another key' });
    await expect(fresh.b.generateKey({ use: 'signature', algorithm: 33 })).rejects.toBeInstanceOf(DeviceFullError);
    fresh.reader.intercept = undefined;
    await fresh.b.close();
    // Every data object number (01-FD) named: another object is refused; a named one is still replaced, and a removal frees its number.
    const objects = await openedReader();
    const store = objects.b.objectStore;
    for (let i = 1; i <= 0xfd; i++) await store.write(`o${i}`, Uint8Array.of(i));
    const sent = objects.reader.sent.length;
    await expect(store.write('one more', Uint8Array.of(0))).rejects.toThrow(new DeviceFullError('the card has no room for another data object (every object number is in use)'));
    await store.remove('never written');
    expect(objects.reader.sent.length, 'nothing sent for either').toBe(sent);
    await store.write('o7', Uint8Array.of(70));
    expect(await store.read('o7')).toEqual(Uint8Array.of(70));
    await store.remove('o1');
    await store.write('one more', Uint8Array.of(0));
    expect(await store.read('one more')).toEqual(Uint8Array.of(0));
    await objects.b.close();
  });
});

describe('the card SE agrees with the software SE where a differential run found it did not', () => {
  it('called directly, both SEs refuse alike, before the card is sent anything: a key spec that is no object, a key of another use or algorithm, a signature to verify that is no bytes, sign() with a public key (the stream still verifies after either)', async () => {
    await bothSes(async (reader, b, soft) => {
      const pair = ecdsa('P-256').keygen();
      const msg = randomBytes(40);
      const got: string[][] = [];
      for (const be of [b, soft] as SecureEnvironmentBackend[]) {
        const aes = await be.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16).fill(3));
        const mac = await be.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(4));
        const pub = await be.importKey({ use: 'signature', algorithm: 33 }, 'public', pair.publicKey);
        const raw = { format: 'raw', prehashed: false } as const;
        const sent = reader.sent.length;
        const cases: [string, () => unknown][] = [
          ['spec null', () => be.importKey(null as never, 'secret', new Uint8Array(16))],
          ['spec of no use', () => be.generateKey({ use: 'mac', algorithm: 25 } as never)],
          ['AES-128-GCM key for AES-256-GCM', () => be.cipher(1002, aes, 'encrypt', { nonce: new Uint8Array(12) })],
          ['AES key for CMAC', () => be.signature(49, aes, raw)],
          ['HMAC-SHA-256 key for HMAC-SHA-384', () => be.signature(26, mac, raw)],
          ['HMAC verify of a text', async () => (await be.signature(25, mac, raw)).verify('x' as never, msg)],
          ['ECDSA verify of a number', async () => (await be.signature(33, pub, raw)).verify(5 as never, msg)],
          ['ECDSA sign with a public key', async () => (await be.signature(33, pub, raw)).sign(msg)],
        ];
        const errors: string[] = [];
        for (const [, run] of cases) errors.push(await (async () => run())().then(() => 'no error', (e: Error) => `${e.name}: ${e.message}`));
        got.push(errors);
        expect(reader.sent.length, `${be.description.seType}: nothing sent`).toBe(sent);
        // A refused sign() or verify() changes nothing: the same stream verifies.
        const s = await be.signature(33, pub, raw);
        await s.update(msg);
        await expect((async () => s.sign())()).rejects.toBeInstanceOf(InvalidInputError);
        await expect((async () => s.verify(5 as never))()).rejects.toBeInstanceOf(InvalidInputError);
        expect(await s.verify(ecdsa('P-256').sign(msg, pair.secretKey, { format: 'raw' }))).toBe(true);
      }
      expect(got[0]).toEqual(got[1]);
      expect(got[0]).toEqual([
        'InvalidInputError: a key spec is an object { use, algorithm }, got null',
        "InvalidInputError: a key's use is 'cipher' or 'signature', got a string of 3 characters",
        'InvalidInputError: the key was made for cipher algorithm 1001, not cipher algorithm 1002',
        'InvalidInputError: the key was made for cipher algorithm 1001, not signature algorithm 49',
        'InvalidInputError: the key was made for signature algorithm 25, not signature algorithm 26',
        'InvalidInputError: signature must be a Uint8Array, got string',
        'InvalidInputError: signature must be a Uint8Array, got number',
        'InvalidInputError: a public key only verifies: sign() needs a secret key',
      ]);
    });
  });

  it('a cipher direction other than encrypt or decrypt is an InvalidInputError on either SE, never taken for one of them; the card is sent nothing', async () => {
    await bothSes(async (reader, b, soft) => {
      for (const be of [b, soft] as SecureEnvironmentBackend[]) {
        const k = await be.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16).fill(3));
        const sent = reader.sent.length;
        for (const direction of ['Encrypt', 'decipher', undefined, 1]) {
          const err = await (async () => be.cipher(1001, k, direction as never, { nonce: new Uint8Array(12) }))().catch((e: unknown) => e);
          expect(err, `${be.description.seType}, ${String(direction)}`).toBeInstanceOf(InvalidInputError);
          expect((err as Error).message).toMatch(/^direction must be 'encrypt' or 'decrypt', got /);
        }
        expect(reader.sent.length, 'nothing sent').toBe(sent);
      }
    });
  });

  it('a cipher without its IV (CBC) or nonce (AEAD) is an InvalidInputError naming it on either SE; the card is sent nothing', async () => {
    await bothSes(async (reader, b, soft) => {
      for (const [alg, name, other] of [[24, 'iv', { nonce: new Uint8Array(16) }], [1001, 'nonce', { iv: new Uint8Array(12) }], [1003, 'nonce', {}]] as const) {
        for (const be of [b, soft] as SecureEnvironmentBackend[]) {
          const k = await be.importKey({ use: 'cipher', algorithm: alg }, 'secret', new Uint8Array(16).fill(3));
          const sent = reader.sent.length;
          // The parameter of the other mode does not stand in for it.
          const err = await (async () => (await be.cipher(alg, k, 'encrypt', other)).final(new Uint8Array(16)))().catch((e: unknown) => e);
          expect(err, `${be.description.seType}, ${alg}`).toBeInstanceOf(InvalidInputError);
          expect((err as Error).message, `${be.description.seType}, ${alg}`).toBe(`${name} must be a Uint8Array, got undefined`);
          expect(reader.sent.length, `${alg}: nothing sent`).toBe(sent);
        }
      }
    });
  });

  it('a DELETE of a data object whose directory write fails stands (the data is gone); the directory is written again before the next change', async () => {
    const { reader, b } = await openedReader();
    await b.objectStore.write('d', new Uint8Array(40).fill(1));
    await b.objectStore.write('keep', new Uint8Array(8).fill(2));
    const directoryWrite = (a: Uint8Array) => a[1] === INS.PUT_DATA && a[2] === DO.OBJECT && a[3] === 0xfe;
    reader.intercept = (a) => (directoryWrite(a) ? ((reader.intercept = undefined), Uint8Array.of(0x6f, 0x00)) : undefined);
    await b.objectStore.remove('d');
    expect(reader.store.objects.size, 'the data object is gone from the card').toBe(2); // 'keep' and the directory
    await expect(b.objectStore.read('d')).rejects.toBeInstanceOf(StateError);
    await b.objectStore.write('keep', new Uint8Array(8).fill(3));
    await b.close();
    // Another session reads the directory the card holds now: 'd' is no longer named there.
    const again = reader.backend();
    await again.open();
    await expect(again.objectStore.read('d')).rejects.toThrow(/no data object 'd'/);
    expect(await again.objectStore.read('keep', 8)).toEqual(new Uint8Array(8).fill(3));
    await again.close();
  });

  it('a DELETE of a data object whose directory write fails, with no change after it: close() writes the directory, which then no longer names the object', async () => {
    for (const share of ['exclusive', 'shared'] as const) {
      const reader = new InProcessReader();
      const b = reader.backend(undefined, { share });
      await b.open();
      await b.objectStore.write('d', new Uint8Array(40).fill(1));
      await b.objectStore.write('keep', new Uint8Array(8).fill(2));
      const directoryWrite = (a: Uint8Array) => a[1] === INS.PUT_DATA && a[2] === DO.OBJECT && a[3] === 0xfe;
      reader.intercept = (a) => (directoryWrite(a) ? ((reader.intercept = undefined), Uint8Array.of(0x6f, 0x00)) : undefined);
      // An entry's ID: tag 80, its length, its UTF-8 bytes.
      const names = (id: string) => Buffer.from(reader.store.objects.get(0xfe)!).includes(Buffer.from([0x80, id.length, ...Buffer.from(id)]));
      await b.objectStore.remove('d');
      expect(names('d'), `${share}: the card's directory still names it`).toBe(true);
      await b.close();
      expect([names('d'), names('keep')], `${share}: written at close`).toEqual([false, true]);
    }
  });

  it('a key slot a DELETE freed serves the next key at once (its deletion is waited for, not raced)', async () => {
    const reader = new InProcessReader();
    for (let ref = 2; ref < 255; ref++) reader.store.keys.set(ref, { algorithm: 25, kind: 'secret', secret: new Uint8Array(32), stamp: newStamp() });
    const b = reader.backend();
    await b.open();
    const spec = { use: 'signature', algorithm: 25 } as const;
    const first = await b.importKey(spec, 'secret', new Uint8Array(32).fill(1));
    b.deleteKey(first);
    const next = await b.importKey(spec, 'secret', new Uint8Array(32).fill(2));
    expect(next).toBeTruthy();
    await b.close();
  });

  it('a signature stream ends at sign(), verify() or abort(): a later update(), sign() or verify() is a StateError on either SE; an aborted MAC chain leaves no context on the card', async () => {
    const card = await openedReader(SHORT_LIMITS);
    const soft = new SoftwareBackend();
    await soft.open();
    const pair = ecdsa('P-256').keygen();
    const msg = randomBytes(600);
    for (const b of [card.b, soft] as SecureEnvironmentBackend[]) {
      const keys = {
        33: await b.importKey({ use: 'signature', algorithm: 33 }, 'secret', pair.secretKey),
        25: await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', randomBytes(32)),
      };
      for (const alg of [33, 25] as const) {
        const what = `${b.description.seType}, algorithm ${alg}`;
        const ends = [
          async (s: Awaited<ReturnType<typeof b.signature>>) => void (await s.sign(msg)),
          async (s: Awaited<ReturnType<typeof b.signature>>) => void (await s.verify(new Uint8Array(alg === 33 ? 64 : 32), msg)),
          async (s: Awaited<ReturnType<typeof b.signature>>) => void (await s.update(msg), s.abort()),
        ];
        for (const [i, end] of ends.entries()) {
          const s = await b.signature(alg, keys[alg], { format: 'raw', prehashed: false });
          await end(s);
          await expect((async () => s.update(msg))(), `${what}, end ${i}: update`).rejects.toThrow(/already finished/);
          await expect((async () => s.sign())(), `${what}, end ${i}: sign`).rejects.toThrow(/already finished/);
          await expect((async () => s.verify(new Uint8Array(32)))(), `${what}, end ${i}: verify`).rejects.toThrow(/already finished/);
        }
      }
      if (b === card.b) {
        await new Promise((r) => setTimeout(r, 20));
        expect(card.reader.streamsOpen(), 'the aborted MAC chain ended on the card').toBe(0);
      }
      await b.close();
    }
  });

  it('CBC-MAC verification of a message it cannot take is a LengthError, also with a signature longer than any MAC', async () => {
    const key = randomBytes(16);
    const card = await openedReader();
    const soft = new SoftwareBackend();
    await soft.open();
    for (const b of [card.b, soft] as SecureEnvironmentBackend[]) {
      const k = await b.importKey({ use: 'signature', algorithm: 18 }, 'secret', key);
      for (const [message, signature] of [[randomBytes(17), randomBytes(20)], [new Uint8Array(0), randomBytes(20)], [randomBytes(17), randomBytes(16)]] as const) {
        const s = await b.signature(18, k, { format: 'raw', prehashed: false });
        // The software SE's verify() answers at once (it may throw), the card's later: both refuse alike.
        await expect((async () => s.verify(signature, message))(), `${b.description.seType}: ${message.length} bytes, signature ${signature.length}`).rejects.toBeInstanceOf(LengthError);
        // The message given in update() and verify() given no last part: the same.
        const u = await b.signature(18, k, { format: 'raw', prehashed: false });
        await u.update(message);
        await expect((async () => u.verify(signature))(), `${b.description.seType}: ${message.length} bytes by update(), signature ${signature.length}`).rejects.toBeInstanceOf(LengthError);
      }
      await b.close();
    }
  });
});
