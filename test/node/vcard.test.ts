// The senv virtual card (card OS + senv applet) driven in-process through the
// host transport stack: the card profile of docs/apdu-profile.md, no pcscd.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hex, type CommandApdu } from '../../src/apdu/apdu.ts';
import { StatusWordError } from '../../src/apdu/errors.ts';
import { CRT, DO, INS, MSE_SET, SENV_AID, TAG } from '../../src/apdu/profile.ts';
import { decodeTlvs, findTlv, tlvs, u16 } from '../../src/apdu/tlv.ts';
import { createTransport, LogicalChannel, selectAid, type ApduTransport } from '../../src/apdu/transport.ts';
import { ecdsa, gcm, hmac, initSync, randomBytes, sha256, sha384, sha512 } from '../../src/core/index.ts';
import { InvalidInputError, StateError } from '../../src/core/errors.ts';
import { stampFrom } from '../../src/mcs/store/files.ts';
import { createVirtualCard, type VirtualCard } from '../../src/virtual-card/index.ts';

initSync();

function stack(card: VirtualCard, extended = true): { t: ApduTransport; sent: () => number } {
  const { transport, raw } = createTransport({ transmit: async (b) => card.os.apdu(b) }, { extended });
  return { t: transport, sent: () => raw.sent };
}

async function open(opts: { extended?: boolean; store?: string } = {}) {
  const card = createVirtualCard({ extended: opts.extended ?? true, ...(opts.store ? { store: opts.store } : {}) });
  card.os.power('cold');
  const s = stack(card, opts.extended ?? true);
  const fci = await selectAid(s.t, SENV_AID);
  return { card, ...s, fci };
}

const mse = (t: ApduTransport, crt: number, alg: number, ref?: number, extra: [number, number[]][] = []) =>
  t.transmit({ cla: 0, ins: INS.MSE, p1: MSE_SET, p2: crt, data: tlvs([TAG.ALGORITHM, u16(alg)], ...(ref ? [[TAG.KEY_REF, [ref]] as [number, number[]]] : []), ...extra) });
const pso = (p1p2: number, data: Uint8Array, secret = false): CommandApdu =>
  ({ cla: 0, ins: INS.PSO, p1: p1p2 >> 8, p2: p1p2 & 0xff, data, ne: 65536, secret });
const putKey = (t: ApduTransport, ref: number, alg: number, kind: 1 | 2, material: Uint8Array) =>
  t.transmit({ cla: 0, ins: INS.PUT_DATA, p1: DO.KEY, p2: ref, secret: true, data: tlvs([TAG.ALGORITHM, u16(alg)], [TAG.KEY_KIND, [kind]], [TAG.KEY_MATERIAL, material]) });
/** PSO VERIFY: the message in chained links, then the signature template alone. */
async function verifyOnCard(t: ApduTransport, msg: Uint8Array, sig: Uint8Array) {
  await t.transmit({ ...pso(0x00a8, msg), cla: 0x10, ne: 0 });
  return t.transmit({ ...pso(0x00a8, tlvs([TAG.SIGNATURE, sig])), ne: 0 });
}
/** PSO streams (keyed core contexts) the applet holds on any channel. */
const openStreams = (card: VirtualCard) => (card.applet as unknown as { streamsOpen: Set<unknown> }).streamsOpen.size;
const swOf = (p: Promise<unknown>) => p.then(() => 0x9000, (e: unknown) => (e instanceof StatusWordError ? e.sw : Promise.reject(e)));

describe('senv virtual card', () => {
  it('answers SELECT with its FCI (limits, algorithms, serial)', async () => {
    const { fci, card } = await open();
    const fcp = decodeTlvs(decodeTlvs(fci)[0]!.value);
    expect(hex(findTlv(fcp, 0x84)!)).toBe(hex(SENV_AID));
    const prop = decodeTlvs(findTlv(fcp, 0xa5)!);
    expect(hex(findTlv(prop, 0x81)!)).toBe('FF00');
    const algs = findTlv(prop, 0x82)!;
    const values = Array.from({ length: algs.length / 2 }, (_, i) => (algs[2 * i]! << 8) | algs[2 * i + 1]!);
    expect(values).toEqual(expect.arrayContaining([4, 5, 6, 25, 26, 27, 33, 34, 38]));
    expect(card.os.atr()[0]).toBe(0x3b);
  });

  it('GET CHALLENGE returns fresh random bytes of the asked length', async () => {
    const { t } = await open();
    const a = await t.transmit({ cla: 0, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: 32 });
    const b = await t.transmit({ cla: 0, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: 32 });
    expect(a.data.length).toBe(32);
    expect(hex(a.data)).not.toBe(hex(b.data));
    expect((await t.transmit({ cla: 0, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: 5000 })).data.length).toBe(5000);
    expect(await swOf(t.transmit({ cla: 0, ins: INS.GET_CHALLENGE, p1: 0, p2: 0 }))).toBe(0x6700);
    // Secure messaging indicated in CLA (b4-b3) is not served as if the command came in plain.
    for (const cla of [0x04, 0x08, 0x0c]) expect(await swOf(t.transmit({ cla, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: 8 })), `CLA ${cla}`).toBe(0x6882);
  });

  for (const extended of [true, false]) {
    it(`PSO HASH streams chained links (${extended ? 'extended' : 'short, chained'})`, async () => {
      const { t, sent } = await open({ extended });
      const msg = randomBytes(3000);
      for (const [alg, f] of [[4, sha256], [5, sha384], [6, sha512]] as const) {
        await mse(t, CRT.HT, alg);
        const before = sent();
        const r = await t.transmit(pso(0x9080, msg));
        expect(hex(r.data)).toBe(hex(f(msg)));
        // one APDU with extended length; ceil(3000 / 255) links when chaining
        expect(sent() - before).toBe(extended ? 1 : Math.ceil(3000 / 255));
      }
    });
  }

  it('HMAC keys: import, sign, verify (card-side, 6300 on mismatch), internal authenticate', async () => {
    const { t } = await open();
    const key = randomBytes(32);
    await putKey(t, 0x10, 25, 1, key);
    await mse(t, CRT.DST, 25, 0x10);
    const msg = randomBytes(700);
    const mac = (await t.transmit(pso(0x9e9a, msg))).data;
    expect(hex(mac)).toBe(hex(hmac('SHA-256', key, msg)));
    const verify = (sig: Uint8Array) => verifyOnCard(t, msg, sig);
    expect(await swOf(verify(mac))).toBe(0x9000);
    const bad = mac.slice();
    bad[0]! ^= 1;
    expect(await swOf(verify(bad))).toBe(0x6300);
    await mse(t, CRT.AT, 25, 0x10);
    const challenge = randomBytes(16);
    expect(hex((await t.transmit({ cla: 0, ins: INS.INTERNAL_AUTHENTICATE, p1: 0, p2: 0, data: challenge, ne: 256 })).data)).toBe(
      hex(hmac('SHA-256', key, challenge)),
    );
    // the wrong algorithm for the key is refused
    await mse(t, CRT.DST, 26, 0x10);
    expect(await swOf(t.transmit(pso(0x9e9a, msg)))).toBe(0x6984);
  });

  it('ECDSA: keys generated on the card sign; the public key verifies on the host and the card', async () => {
    const { t } = await open();
    const gen = await t.transmit({ cla: 0, ins: INS.GENERATE_KEY_PAIR, p1: 0x80, p2: 0, data: tlvs([TAG.ALGORITHM, u16(33)], [TAG.KEY_REF, [0x21]]), ne: 256 });
    const pub = findTlv(decodeTlvs(findTlv(decodeTlvs(gen.data), TAG.PUBLIC_KEY_TEMPLATE)!), TAG.EC_POINT)!;
    expect(pub.length).toBe(65);
    const msg = randomBytes(1000);
    await mse(t, CRT.DST, 33, 0x21);
    const raw = (await t.transmit(pso(0x9e9a, msg))).data;
    expect(raw.length).toBe(64);
    expect(ecdsa('P-256').verify(raw, msg, pub, { format: 'raw' })).toBe(true);
    await mse(t, CRT.DST, 33, 0x21, [[TAG.SIG_FORMAT, [1]]]);
    const der = (await t.transmit(pso(0x9e9a, msg))).data;
    expect(ecdsa('P-256').verify(der, msg, pub, { format: 'der' })).toBe(true);
    expect(await swOf(verifyOnCard(t, msg, der))).toBe(0x9000);
    // prehashed input
    await mse(t, CRT.DST, 33, 0x21, [[TAG.INPUT_IS_DIGEST, [1]]]);
    const sigOfDigest = (await t.transmit(pso(0x9e9a, sha256(msg)))).data;
    expect(ecdsa('P-256').verify(sigOfDigest, msg, pub, { format: 'raw' })).toBe(true);
    // reading the public key again; the key information never carries the secret
    const again = await t.transmit({ cla: 0, ins: INS.GENERATE_KEY_PAIR, p1: 0x81, p2: 0, data: tlvs([TAG.KEY_REF, [0x21]]), ne: 256 });
    expect(hex(again.data)).toBe(hex(gen.data));
    const info = decodeTlvs((await t.transmit({ cla: 0, ins: INS.GET_DATA, p1: DO.KEY, p2: 0x21, ne: 256 })).data);
    expect(info.map((x) => x.tag)).toEqual([TAG.ALGORITHM, TAG.KEY_KIND, TAG.KEY_STAMP, TAG.EC_POINT]);
    expect(info[2]!.value.length, 'an 8-byte key stamp').toBe(8);
    // internal authenticate signs the challenge
    await mse(t, CRT.AT, 33, 0x21);
    const challenge = randomBytes(32);
    const auth = (await t.transmit({ cla: 0, ins: INS.INTERNAL_AUTHENTICATE, p1: 0, p2: 0, data: challenge, ne: 256 })).data;
    expect(ecdsa('P-256').verify(auth, challenge, pub, { format: 'raw' })).toBe(true);
  });

  it('imports ECDSA private scalars and public points', async () => {
    const { t } = await open();
    const pair = ecdsa('P-384').keygen();
    await putKey(t, 0x30, 34, 1, pair.secretKey);
    await putKey(t, 0x31, 34, 2, pair.publicKey);
    const msg = randomBytes(100);
    await mse(t, CRT.DST, 34, 0x30);
    const sig = (await t.transmit(pso(0x9e9a, msg))).data;
    expect(ecdsa('P-384').verify(sig, msg, pair.publicKey, { format: 'raw' })).toBe(true);
    await mse(t, CRT.DST, 34, 0x31);
    expect(await swOf(verifyOnCard(t, msg, sig))).toBe(0x9000);
    // a public key cannot sign
    expect(await swOf(t.transmit(pso(0x9e9a, msg)))).toBe(0x6984);
    expect(await swOf(putKey(t, 0x32, 34, 1, new Uint8Array(48)))).toBe(0x6a80);
    // A public key must be an uncompressed point of the curve.
    const offCurve = Uint8Array.from(pair.publicKey);
    offCurve[96]! ^= 1;
    const compressed = ecdsa('P-384').getPublicKey(pair.secretKey, true);
    for (const [what, key] of [['3 bytes', Uint8Array.of(1, 2, 3)], ['off the curve', offCurve], ['compressed', compressed], ['a P-256 point', ecdsa('P-256').keygen().publicKey]] as const) {
      expect(await swOf(putKey(t, 0x33, 34, 2, key)), what).toBe(0x6a80);
    }
  });

  it('AES: ENCIPHER links stream ciphertext, an AEAD DECIPHER releases nothing before the tag verified', async () => {
    const { t } = await open({ extended: false });
    const key = randomBytes(16);
    const nonce = randomBytes(12);
    const aad = randomBytes(5);
    await putKey(t, 0x40, 1001, 1, key);
    await mse(t, CRT.CT, 1001, 0x40, [[TAG.IV, [...nonce]], [TAG.AAD, [...aad]]]);
    const msg = randomBytes(600);
    const link = (p1p2: number, data: Uint8Array, more: boolean) => t.transmit({ ...pso(p1p2, data), cla: more ? 0x10 : 0 });
    const c1 = await link(0x8680, msg.subarray(0, 255), true);
    const c2 = await link(0x8680, msg.subarray(255), false);
    const ct = new Uint8Array([...c1.data, ...c2.data]);
    expect(c1.data.length).toBe(255);
    expect(hex(ct)).toBe(hex(gcm(key, nonce, aad).encrypt(msg)));
    await mse(t, CRT.CT, 1001, 0x40, [[TAG.IV, [...nonce]], [TAG.AAD, [...aad]]]);
    expect((await link(0x8086, ct.subarray(0, 255), true)).data.length).toBe(0);
    expect(hex((await link(0x8086, ct.subarray(255), false)).data)).toBe(hex(msg));
    ct[0]! ^= 1;
    await mse(t, CRT.CT, 1001, 0x40, [[TAG.IV, [...nonce]], [TAG.AAD, [...aad]]]);
    expect(await swOf(t.transmit(pso(0x8086, ct)))).toBe(0x6300);
    // CBC without padding refuses a partial block; a wrong key length is refused at import
    await putKey(t, 0x41, 13, 1, key);
    await mse(t, CRT.CT, 13, 0x41, [[TAG.IV, [...randomBytes(16)]]]);
    expect(await swOf(t.transmit(pso(0x8680, randomBytes(17))))).toBe(0x6700);
    expect(await swOf(putKey(t, 0x42, 1001, 1, randomBytes(20)))).toBe(0x6a80);
  });

  it('stores, reads and deletes sensitive data objects; reports memory', async () => {
    const { t } = await open({ extended: false });
    const data = randomBytes(1000);
    await t.transmit({ cla: 0, ins: INS.PUT_DATA, p1: DO.OBJECT, p2: 7, data, secret: true });
    // 1000 bytes through a short-length transport: 61xx + GET RESPONSE
    const back = await t.transmit({ cla: 0, ins: INS.GET_DATA, p1: DO.OBJECT, p2: 7, ne: 256, secret: true });
    expect(hex(back.data)).toBe(hex(data));
    const mem = (await t.transmit({ cla: 0, ins: INS.GET_DATA, p1: 0xdf, p2: 0x02, ne: 8 })).data;
    const v = new DataView(mem.buffer, mem.byteOffset);
    expect(v.getUint32(0) - v.getUint32(4)).toBeGreaterThanOrEqual(1000);
    await t.transmit({ cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_OBJECT, p2: 7 });
    expect(await swOf(t.transmit({ cla: 0, ins: INS.GET_DATA, p1: DO.OBJECT, p2: 7, ne: 256 }))).toBe(0x6a88);
  });

  it('keeps keys in its persistent store across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-vcard-'));
    try {
      const store = join(dir, 'card.json');
      const first = await open({ store });
      const key = randomBytes(48);
      await putKey(first.t, 0x05, 26, 1, key);
      await first.card.close();
      const again = await open({ store });
      await mse(again.t, CRT.DST, 26, 0x05);
      const msg = randomBytes(10);
      expect(hex((await again.t.transmit(pso(0x9e9a, msg))).data)).toBe(hex(hmac('SHA-384', key, msg)));
      // the card's "EEPROM" is private to its user
      expect(statSync(store).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** The message of the error (InvalidInputError unless said) a card refuses `store` with. */
  const refusal = (store: string, type: typeof InvalidInputError | typeof StateError = InvalidInputError): string => {
    let err: unknown;
    try {
      createVirtualCard({ store });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(type);
    return (err as Error).message;
  };

  it('a key store that cannot be read is refused, never replaced by an empty one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-vcard-'));
    try {
      // A directory where the file should be: reading fails (EISDIR) whatever the user, root included.
      const store = join(dir, 'card.json');
      mkdirSync(store);
      expect(refusal(store)).toBe(`virtual card store ${store} cannot be read (EISDIR)`);
      expect(statSync(store).isDirectory()).toBe(true);
      // A file that is not there is a new, empty store.
      createVirtualCard({ store: join(dir, 'new.json') });
      expect(JSON.parse(readFileSync(join(dir, 'new.json'), 'utf8'))).toMatchObject({ keys: {}, objects: {} });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('one card owns a store file at a time: a live holder is refused by pid, a gone one taken over', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-vcard-'));
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const store = join(dir, 'card.json');
      const lock = `${store}.lock`;
      const inUse = (pid: number) => expect(refusal(store, StateError)).toBe(`virtual card store ${store} is in use by process ${pid} (${lock})`);
      const first = await open({ store });
      const key = randomBytes(32);
      await putKey(first.t, 0x03, 25, 1, key);
      // A second card in this process, as in another, would rewrite the file from its own copy.
      inUse(process.pid);
      await first.card.close();
      expect(existsSync(lock)).toBe(false);
      const again = await open({ store });
      await mse(again.t, CRT.DST, 25, 0x03);
      const msg = randomBytes(10);
      expect(hex((await again.t.transmit(pso(0x9e9a, msg))).data)).toBe(hex(hmac('SHA-256', key, msg)));
      await again.card.close();

      // Another process that runs, with the start time it had when it took the lock.
      const stamp = stampFrom((p) => readFileSync(p, 'utf8'), sleeper.pid!);
      expect(stamp).toMatch(/^[0-9a-f-]+:\d+$/);
      writeFileSync(lock, JSON.stringify({ pid: sleeper.pid, stamp }));
      inUse(sleeper.pid!);
      // The same pid with another start time is another process: the holder is gone (pids are reused).
      writeFileSync(lock, JSON.stringify({ pid: sleeper.pid, stamp: `${stamp}0` }));
      const reused = createVirtualCard({ store });
      expect(JSON.parse(readFileSync(lock, 'utf8'))).toEqual({ pid: process.pid, stamp: stampFrom((p) => readFileSync(p, 'utf8'), process.pid) });
      await reused.close();
      // A holder that no longer runs, and a lock file that is not whole, hold nothing.
      writeFileSync(lock, JSON.stringify({ pid: sleeper.pid, stamp }));
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
      for (const text of [undefined, '{"pid":']) {
        if (text !== undefined) writeFileSync(lock, text);
        const taken = createVirtualCard({ store });
        expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(process.pid);
        await taken.close();
      }
      expect(readdirSync(dir).sort()).toEqual(['card.json']);
    } finally {
      sleeper.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a damaged key store is refused by field, without its bytes in the message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'senv-vcard-'));
    const secret = '00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEF0';
    try {
      const damaged = [
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret: secret.slice(1) } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret: `${secret.slice(2)}G0` } }, objects: {} }),
        `{"serial":"0102030405060708","keys":{"1":{"algorithm":25,"kind":"secret","secret":${secret}}},"objects":{}}`,
        // Valid JSON of the wrong shape: named by field too, not a bare TypeError.
        'null',
        '[]',
        JSON.stringify({ serial: '0102030405060708' }),
        JSON.stringify({ serial: '0102030405060708', keys: null, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: null }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: '25', kind: 'secret', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'private', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { one: { algorithm: 25, kind: 'secret', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: {}, objects: null }),
        JSON.stringify({ serial: '0102030405060708', keys: {}, objects: { x: '00' } }),
        // Slots and numbers the card cannot address (one byte, 0 and 0xFF kept out), one number written
        // two ways, a serial of another length, and records that do not hold what their kind holds.
        JSON.stringify({ serial: '0102030405060708', keys: { 0: { algorithm: 25, kind: 'secret', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 255: { algorithm: 25, kind: 'secret', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: {}, objects: { 300: '00' } }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret }, '001': { algorithm: 25, kind: 'secret', secret } }, objects: {} }),
        JSON.stringify({ serial: '01020304050607', keys: {}, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: -5, kind: 'secret', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret: '' } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 33, kind: 'public', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 33, kind: 'public', publicKey: '04AB', secret } }, objects: {} }),
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 0x10000, kind: 'secret', secret } }, objects: {} }),
        // A key stamp of another length than the profile's 8 bytes names no key the host could give back.
        JSON.stringify({ serial: '0102030405060708', keys: { 1: { algorithm: 25, kind: 'secret', secret, stamp: '01020304050607' } }, objects: {} }),
      ];
      for (const [i, text] of damaged.entries()) {
        const store = join(dir, `card-${i}.json`);
        writeFileSync(store, text);
        const message = refusal(store);
        expect(message).toContain(store);
        for (let o = 0; o + 8 <= secret.length; o += 4) expect(message.toUpperCase()).not.toContain(secret.slice(o, o + 8));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('MANAGE CHANNEL close frees the PSO stream the closed channel held', async () => {
    const { t, card } = await open();
    await putKey(t, 0x11, 25, 1, randomBytes(32));
    const ch1 = await LogicalChannel.open(t);
    await selectAid(ch1, SENV_AID);
    await mse(ch1, CRT.DST, 25, 0x11);
    await ch1.transmit({ ...pso(0x9e9a, randomBytes(10)), cla: 0x10, ne: 0 });
    expect(openStreams(card)).toBe(1);
    await ch1.close();
    expect(openStreams(card)).toBe(0);
  });

  it('any other command between the links of a PSO chain breaks it (6883) and frees its stream', async () => {
    const { t, card } = await open();
    const text = (x: string) => new TextEncoder().encode(x);
    const link = (data: Uint8Array) => t.transmit({ ...pso(0x9080, data), cla: 0x10, ne: 0 });
    await mse(t, CRT.HT, 4);
    await link(text('abc'));
    expect(await swOf(t.transmit({ cla: 0, ins: INS.GET_CHALLENGE, p1: 0, p2: 0, ne: 8 }))).toBe(0x6883);
    expect(openStreams(card)).toBe(0);
    // the next PSO starts a new message
    expect(hex((await t.transmit(pso(0x9080, text('def')))).data)).toBe(hex(sha256(text('def'))));
    // MSE:SET and SELECT are other commands too; what they interrupted is gone, and sent again they run
    await link(text('abc'));
    expect(await swOf(mse(t, CRT.HT, 6))).toBe(0x6883);
    await mse(t, CRT.HT, 6);
    await link(text('abc'));
    expect(await swOf(selectAid(t, SENV_AID))).toBe(0x6883);
    expect(openStreams(card)).toBe(0);
    await selectAid(t, SENV_AID);
    // a link the card refuses ends its chain as well
    await mse(t, CRT.HT, 4);
    await link(text('abc'));
    expect(await swOf(t.transmit({ ...pso(0x8680, text('x')), cla: 0x10 }))).toBe(0x6985);
    expect(openStreams(card)).toBe(0);
    expect(hex((await t.transmit(pso(0x9080, text('def')))).data)).toBe(hex(sha256(text('def'))));
  });

  it('logical channels keep their own selection and security environment', async () => {
    const { t, card } = await open();
    const ch1 = await LogicalChannel.open(t);
    expect(ch1.channel).toBe(1);
    await selectAid(ch1, SENV_AID);
    await mse(ch1, CRT.HT, 6);
    await mse(t, CRT.HT, 4);
    const msg = randomBytes(50);
    expect(hex((await ch1.transmit(pso(0x9080, msg))).data)).toBe(hex(sha512(msg)));
    expect(hex((await t.transmit(pso(0x9080, msg))).data)).toBe(hex(sha256(msg)));
    await ch1.close();
    expect(card.os.apdu(Uint8Array.of(0x01, 0xca, 0xdf, 0x01, 0x00))).toEqual(Uint8Array.of(0x68, 0x81));
  });

  it('a chain is refused once it outgrows what one command of the profile holds; a digest given as input once it outgrows a digest', async () => {
    const { card, t } = await open();
    // Joined (PUT DATA): 2^24 - 1 bytes of value and a template, no more; then 6A84 and the chain is gone.
    const link = Uint8Array.of(0x10, 0xda, 0x02, 0x05, 0x00, 0xff, 0x00, ...new Uint8Array(0xff00));
    let sw = '';
    let links = 0;
    for (; links < 300 && (sw = hex(card.os.apdu(link).subarray(-2))) === '9000'; links++);
    expect(sw).toBe('6A84');
    expect(links).toBe(Math.floor((0xffffff + 256) / 0xff00));
    expect(hex(card.os.apdu(Uint8Array.of(0x00, 0xca, 0xdf, 0x02, 0x00)).subarray(-2)), 'the card serves on').toBe('9000');
    // ECDSA over a digest given by the host (C0 01): input beyond the digest's length is refused at that link.
    const ref = 0x21;
    await t.transmit({ cla: 0, ins: 0x47, p1: 0x80, p2: 0x00, data: Uint8Array.of(0x80, 0x02, 0x00, 33, 0x84, 0x01, ref), ne: 256 });
    await mse(t, CRT.DST, 33, ref, [[0xc0, [1]]]);
    expect(await swOf(t.transmit({ ...pso(0x9e9a, new Uint8Array(20)), cla: 0x10 }))).toBe(0x9000);
    expect(await swOf(t.transmit({ ...pso(0x9e9a, new Uint8Array(20)), cla: 0x10 }))).toBe(0x6700);
  });

  it('refuses a broken chain, extended APDUs when configured short, and forgets state on reset', async () => {
    const { card, t } = await open({ extended: false });
    await mse(t, CRT.HT, 4);
    expect(hex(card.os.apdu(Uint8Array.of(0x10, 0xda, 0x02, 0x01, 0x01, 0xaa)))).toBe('9000');
    expect(hex(card.os.apdu(Uint8Array.of(0x00, 0xca, 0xdf, 0x01, 0x00)))).toBe('6883');
    expect(hex(card.os.apdu(Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x00, 0x01, 0x00)))).toBe('6700');
    card.os.power('warm');
    expect(hex(card.os.apdu(Uint8Array.of(0x00, 0x84, 0x00, 0x00, 0x08)))).toBe('6D00');
    expect(card.applet.counters.warm).toBe(1);
  });
});
