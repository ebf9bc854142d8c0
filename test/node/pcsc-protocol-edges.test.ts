// Boundaries of the APDU and BER-TLV codecs, the transport, the PC/SC
// backend's reading of card answers and the senv card that the other PC/SC
// tests leave open (found by mutation testing): each test pins one rule of
// docs/apdu-profile.md that a one-token change would break unnoticed. No
// pcscd: pure codec tests and the in-process card.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { decodeCommand, encodeCommand, fromHex, hex } from '../../src/apdu/apdu.ts';
import { decodeTlvs, encodeTlv } from '../../src/apdu/tlv.ts';
import { ChainingLayer, GetResponseLayer, RawTransport, StatusLayer } from '../../src/apdu/transport.ts';
import { StatusWordError } from '../../src/apdu/errors.ts';
import { InvalidInputError, InvalidValueError, LengthError } from '../../src/core/errors.ts';
import { ecdsa, initSync, sha256 } from '../../src/core/index.ts';
import { SoftwareBackend } from '../../src/backends/software/index.ts';
import { SHORT_LIMITS } from '../../src/virtual-card/card.ts';
import { InProcessReader } from './pcsc-helpers.ts';
import { scripted } from './scripted-card.ts';

initSync();

const bytes = (n: number, f: (i: number) => number = (i) => i & 0xff) => Uint8Array.from({ length: n }, (_, i) => f(i));

describe('codec boundaries', () => {
  it('BER-TLV lengths switch form exactly at 128, 256 and 65536 bytes, and each form reads back whole', () => {
    // 7816-4 clause 5.2: 00-7F in one byte; 81 xx for 80-FF (a lone 80 is BER's indefinite form); 82 xxxx; 83 xxxxxx.
    const heads: [number, string][] = [
      [127, '807F'], [128, '808180'], [255, '8081FF'], [256, '80820100'], [65535, '8082FFFF'], [65536, '8083010000'],
    ];
    for (const [n, head] of heads) {
      const v = bytes(n, (i) => (i * 31 + n) & 0xff);
      const e = encodeTlv(0x80, v);
      expect(hex(e.subarray(0, head.length / 2)), `${n} bytes`).toBe(head);
      expect(e.length, `${n} bytes`).toBe(head.length / 2 + n);
      const [t, ...rest] = decodeTlvs(e);
      expect(rest.length).toBe(0);
      expect(hex(t!.value), `${n} bytes`).toBe(hex(v));
    }
  });

  it('the short form carries Nc up to 255 and Ne up to 256; one byte more needs the extended form, and a stack told "short" refuses it', () => {
    const c255 = encodeCommand({ cla: 0, ins: 0xda, p1: 2, p2: 1, data: bytes(255) });
    expect(hex(c255.subarray(0, 5))).toBe('00DA0201FF');
    expect(c255.length).toBe(5 + 255);
    expect(decodeCommand(c255).extended).toBe(false);
    const c255ne = encodeCommand({ cla: 0, ins: 0x2a, p1: 0x86, p2: 0x80, data: bytes(255), ne: 256 });
    expect(c255ne.length).toBe(5 + 255 + 1);
    expect(c255ne[c255ne.length - 1]).toBe(0);
    // Nc 256 and Ne 257 do not fit: never a short APDU with Lc / Le taken modulo 256.
    expect(() => encodeCommand({ cla: 0, ins: 0xda, p1: 2, p2: 1, data: bytes(256) }, { extended: false })).toThrow(LengthError);
    expect(() => encodeCommand({ cla: 0, ins: 0xca, p1: 2, p2: 1, ne: 257 }, { extended: false })).toThrow(LengthError);
    expect(hex(encodeCommand({ cla: 0, ins: 0xda, p1: 2, p2: 1, data: bytes(256) }).subarray(0, 7))).toBe('00DA0201000100');
  });
});

describe('GET RESPONSE', () => {
  it('after a chained link answered 61xx it goes out without b5 on the link\'s channel, and 61 00 asks an extended card for all it can', async () => {
    // GET RESPONSE is no link of the chain (7816-4 clause 5.3.3): with b5 set a card would take it
    // for a link of another command, refuse it with 6883 and drop the chain.
    const ch = scripted([
      ['132A868000000401020304 0000', 'AAAA6100'],
      ['03C0000000 0000', 'BBBB9000'],
      ['512A868000000401020304 0000', 'CCCC6102'],
      ['41C0000002', 'DDDD9000'],
    ]);
    const t = new GetResponseLayer(new RawTransport(ch, { extended: true }));
    const link = (cla: number) => t.transmit({ cla, ins: 0x2a, p1: 0x86, p2: 0x80, data: Uint8Array.of(1, 2, 3, 4), ne: 65536 });
    expect(hex((await link(0x13)).data)).toBe('AAAABBBB');
    expect(hex((await link(0x51)).data)).toBe('CCCCDDDD');
    ch.done();
  });
});

describe('status words and chaining', () => {
  it('only 9000 is success: 9001 and 90FF are refusals, and the data a refused secret exchange brought is zeroized', async () => {
    for (const sw of ['9001', '90FF', '6300']) {
      const ch = scripted([['00CA020100', `A1A2A3${sw}`]]);
      const t = new StatusLayer(new RawTransport(ch, { extended: false }));
      const e = await t.transmit({ cla: 0, ins: 0xca, p1: 2, p2: 1, ne: 256, secret: true }).then(() => undefined, (x: unknown) => x);
      expect(e, sw).toBeInstanceOf(StatusWordError);
      expect((e as StatusWordError).sw).toBe(parseInt(sw, 16));
      // The response data of a secret exchange goes to no one (decodeResponse's data is a view of it).
      expect(hex(ch.given[0]!.subarray(0, 3)), sw).toBe('000000');
      ch.done();
    }
  });

  it('data that fills its links exactly costs exactly that many links: no empty last link, and no channel for a stream of one full link', async () => {
    const ch = scripted([
      ['10DA020104 01020304', '9000'],
      ['00DA020104 05060708', '9000'],
    ]);
    const t = new ChainingLayer(new RawTransport(ch, { extended: false }), 4);
    expect((await t.transmit({ cla: 0, ins: 0xda, p1: 2, p2: 1, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) })).sw).toBe(0x9000);
    ch.done();
    // A stream holding exactly one link (255 bytes on a short card) sends it as the last link at final(),
    // on channel 0: MSE:SET + one PSO, no MANAGE CHANNEL / SELECT for a channel of its own.
    const reader = new InProcessReader(SHORT_LIMITS);
    const b = reader.backend();
    await b.open();
    const msg = bytes(255, (i) => i * 7);
    reader.sent.length = 0;
    const d = await b.digest(4);
    await d.update(msg);
    expect(hex(await d.final())).toBe(hex(sha256(msg)));
    expect(reader.sent.map((a) => hex(a.subarray(0, 4)))).toEqual(['002241AA', '002A9080']);
    await b.close();
  });
});

/** The PC/SC SE on an in-process card and the software SE, both open: for checks both make alike on the host. */
async function bothBackends() {
  const reader = new InProcessReader();
  const b = reader.backend();
  await b.open();
  const soft = new SoftwareBackend();
  await soft.open();
  return { reader, b, soft };
}

describe('key slots (in-process card)', () => {
  it('the slot map (DF04) has slot n at bit 7 - n % 8 of byte n / 8, and a backend opened on a card with keys takes the next free slot at once', async () => {
    const reader = new InProcessReader();
    const first = reader.backend();
    await first.open();
    for (let i = 0; i < 3; i++) await first.generateKey({ use: 'signature', algorithm: 25 }); // HMAC-SHA-256: slots 1, 2, 3
    await first.close();
    reader.os.power('cold');
    expect(reader.os.apdu(fromHex('00A4040006F053454E5601')).subarray(-2)).toEqual(Uint8Array.of(0x61, 0x4d));
    const map = reader.os.apdu(fromHex('00CADF0420'));
    expect(hex(map)).toBe(`70${'00'.repeat(31)}9000`);
    // The next application reads the map and asks for slot 4 straight away: no 6A89 round trips.
    const second = reader.backend();
    await second.open();
    reader.sent.length = 0;
    await second.generateKey({ use: 'signature', algorithm: 25 });
    const generates = reader.sent.filter((a) => a[1] === 0x47).map((a) => decodeCommand(a).data);
    expect(generates.map(hex)).toEqual(['8002001984 0104'.replace(' ', '')]);
    await second.close();
  });

  it('a deletion the card answers 6A88 (the slot is already empty) frees the slot: the next key takes it, and nothing is deleted again', async () => {
    const reader = new InProcessReader();
    const b = reader.backend();
    await b.open();
    const k = await b.generateKey({ use: 'signature', algorithm: 25 });
    // Someone deleted the key behind the backend's back (another application, a wiped card).
    expect(hex(reader.os.apdu(fromHex('00DA0301')))).toBe('9000');
    reader.sent.length = 0;
    b.deleteKey(k);
    await b.memoryInfo(); // queued behind the deletion
    await b.generateKey({ use: 'signature', algorithm: 25 });
    await b.close();
    const deletes = reader.sent.filter((a) => a[1] === 0xda && a[2] === 0x03);
    // One deletion, naming the key by its stamp (83 08).
    expect(deletes.map(hex)).toEqual([expect.stringMatching(/^00DA03010A8308[0-9A-F]{16}$/)]);
    const generate = reader.sent.find((a) => a[1] === 0x47)!;
    expect(hex(decodeCommand(generate).data)).toBe('80020019840101');
  });

  it('a public key to import is checked on the host as the software SE checks it: nothing goes to the card', async () => {
    const { reader, b, soft } = await bothBackends();
    const spec = { use: 'signature', algorithm: 33 } as const;
    const good = ecdsa('P-256').keygen().publicKey;
    const offCurve = Uint8Array.from(good);
    offCurve[64]! ^= 1;
    reader.sent.length = 0;
    for (const [what, key, error] of [['3 bytes', Uint8Array.of(1, 2, 3), LengthError], ['off the curve', offCurve, InvalidValueError]] as const) {
      await expect(b.importKey(spec, 'public', key), what).rejects.toBeInstanceOf(error);
      await expect(soft.importKey(spec, 'public', key), what).rejects.toBeInstanceOf(error);
    }
    expect(reader.sent.filter((a) => a[1] === 0xda), 'no PUT DATA').toEqual([]);
    const k = await b.importKey(spec, 'public', good);
    expect(await b.publicKey(k)).toEqual(good);
    await b.close();
    await soft.close();
  });

  it('both backends describe their software as the package\'s version ([deviceInfo] softwareVersion)', async () => {
    const { b, soft } = await bothBackends();
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect([b.description.softwareVersion, soft.description.softwareVersion]).toEqual([version, version]);
    await b.close();
    await soft.close();
  });

  it('signature options and cipher params are checked on the host as the software SE checks them: nothing goes to the card', async () => {
    const { reader, b, soft } = await bothBackends();
    const spec = { use: 'signature', algorithm: 33 } as const;
    const [card, own] = [await b.generateKey(spec), await soft.generateKey(spec)];
    reader.sent.length = 0;
    for (const bad of [undefined, { format: 'raw' }, { format: 'pem', prehashed: false }]) {
      await expect(b.signature(33, card, bad as never), JSON.stringify(bad)).rejects.toThrow(InvalidInputError);
      expect(() => soft.signature(33, own, bad as never), JSON.stringify(bad)).toThrow(InvalidInputError);
    }
    const aes = { use: 'cipher', algorithm: 1001 } as const;
    const [cardAes, ownAes] = [await b.generateKey(aes), await soft.generateKey(aes)];
    reader.sent.length = 0;
    for (const bad of [undefined, null]) {
      await expect(b.cipher(1001, cardAes, 'encrypt', bad as never), String(bad)).rejects.toThrow(InvalidInputError);
      expect(() => soft.cipher(1001, ownAes, 'encrypt', bad as never), String(bad)).toThrow(InvalidInputError);
    }
    expect(reader.sent, 'no APDU').toEqual([]);
    await b.close();
    await soft.close();
  });

  it('only 6300 from VERIFY means "does not verify": any other refusal of it is the card\'s error, never false', async () => {
    const reader = new InProcessReader();
    const b = reader.backend();
    await b.open();
    const k = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(7));
    const isVerify = (a: Uint8Array) => a[1] === 0x2a && a[2] === 0x00 && a[3] === 0xa8 && (a[0]! & 0x10) === 0;
    for (const sw of [0x6f00, 0x6a88, 0x6985, 0x6a80]) {
      // The card ran the VERIFY (its chain is closed); the answer says something else went wrong.
      reader.intercept = (a) => (isVerify(a) ? (reader.os.apdu(a), Uint8Array.of(sw >> 8, sw & 0xff)) : undefined);
      const s = await b.signature(25, k, { format: 'raw', prehashed: false });
      const e = await Promise.resolve(s.verify(new Uint8Array(32), Uint8Array.of(1, 2, 3))).then((v) => v, (x: unknown) => x);
      expect(e, sw.toString(16)).toBeInstanceOf(StatusWordError);
      expect((e as StatusWordError).sw).toBe(sw);
    }
    reader.intercept = undefined;
    const s = await b.signature(25, k, { format: 'raw', prehashed: false });
    expect(await s.verify(new Uint8Array(32), Uint8Array.of(1, 2, 3))).toBe(false);
    await b.close();
  });
});
