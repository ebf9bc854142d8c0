// APDU codec and every transport layer against scripted card responses.
import { describe, expect, it } from 'vitest';
import { decodeCommand, decodeResponse, encodeCommand, encodeResponse, fromHex, hex, joinParts, type CommandApdu } from '../../src/apdu/apdu.ts';
import { ApduError, StatusWordError, statusWordMeaning } from '../../src/apdu/errors.ts';
import {
  ChainingLayer, claForChannel, channelOfCla, commandName, createTransport, GetResponseLayer, LeCorrectionLayer, LoggingLayer,
  LogicalChannel, RawTransport, selectAid, StatusLayer, type ByteChannel,
} from '../../src/apdu/transport.ts';
import { decodeTlvs, encodeTlv } from '../../src/apdu/tlv.ts';
import { InvalidInputError, LengthError } from '../../src/core/errors.ts';
import { scripted } from './scripted-card.ts';

const raw = (ch: ByteChannel, extended = false) => new RawTransport(ch, { extended });
const bytes = (n: number, f = (i: number) => i & 0xff) => Uint8Array.from({ length: n }, (_, i) => f(i));

describe('command APDU codec', () => {
  const cases: [string, CommandApdu, string][] = [
    ['case 1', { cla: 0, ins: 0xa4, p1: 4, p2: 0 }, '00A40400'],
    ['case 2 short', { cla: 0, ins: 0x84, p1: 0, p2: 0, ne: 8 }, '0084000008'],
    ['case 2 short Ne=256', { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256 }, '00B0000000'],
    ['case 3 short', { cla: 0, ins: 0xa4, p1: 4, p2: 0, data: fromHex('A000000151') }, '00A4040005A000000151'],
    ['case 4 short', { cla: 0, ins: 0xa4, p1: 4, p2: 0, data: fromHex('A000000151'), ne: 256 }, '00A4040005A00000015100'],
    ['case 2 extended', { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 4000 }, '00B00000000FA0'],
    ['case 2 extended Ne=65536', { cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65536 }, '00B00000000000'],
  ];
  for (const [name, cmd, wire] of cases) {
    it(`${name} encodes and decodes`, () => {
      expect(hex(encodeCommand(cmd))).toBe(wire);
      const d = decodeCommand(fromHex(wire));
      expect([d.cla, d.ins, d.p1, d.p2]).toEqual([cmd.cla, cmd.ins, cmd.p1, cmd.p2]);
      expect(hex(d.data)).toBe(hex(cmd.data ?? new Uint8Array(0)));
      expect(d.ne).toBe(cmd.ne ?? 0);
    });
  }

  it('extended cases 3 and 4 carry 3-byte Lc and 2-byte Le', () => {
    const data = bytes(300);
    const c3 = encodeCommand({ cla: 0, ins: 0x2a, p1: 0x90, p2: 0x80, data });
    expect(hex(c3.subarray(0, 7))).toBe('002A908000012C');
    expect(c3.length).toBe(7 + 300);
    const c4 = encodeCommand({ cla: 0, ins: 0x2a, p1: 0x90, p2: 0x80, data, ne: 65536 });
    expect(hex(c4.subarray(c4.length - 2))).toBe('0000');
    const d = decodeCommand(c4);
    expect([d.case, d.extended, d.ne, d.data.length]).toEqual([4, true, 65536, 300]);
    // forced extended form for small fields
    expect(hex(encodeCommand({ cla: 0, ins: 0xca, p1: 0, p2: 0, data: fromHex('01'), ne: 2 }, { extended: true }))).toBe('00CA0000000001010002');
  });

  it('rejects what does not fit and malformed input', () => {
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, data: bytes(256) }, { allowExtended: false })).toThrow(LengthError);
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, ne: 65537 })).toThrow(LengthError);
    // 65536 bytes would go out as Lc 00 0000, which says none.
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, data: bytes(65536) })).toThrow(/^command data must be at most 65535 bytes, got 65536$/);
    expect(encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, data: bytes(65535) }).length).toBe(7 + 65535);
    expect(() => encodeCommand({ cla: 256, ins: 0, p1: 0, p2: 0 })).toThrow(/CLA must be a byte/);
    // A misspelt option would leave the short form or a forbidden extended one in silence.
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, data: bytes(256) }, { allowExtend: false } as never)).toThrow(/^unknown option 'allowExtend' in the encoding options \(known: extended, allowExtended\)$/);
    const ch: ByteChannel = { transmit: async () => fromHex('9000') };
    expect(() => createTransport(ch, { extended: false, maxResponseTotl: 10 } as never)).toThrow(/^unknown option 'maxResponseTotl' in the transport options \(known: extended, log, checkStatus, /);
    // A caller's string (a key in hex, say) is shown by its length, never quoted; a symbol is no TypeError.
    const hexText = '00112233445566778899aabbccddeeff';
    expect(() => encodeCommand({ cla: hexText as never, ins: 0, p1: 0, p2: 0 })).toThrow(/^CLA must be a byte \(0\.\.255\), got a string of 32 characters$/);
    expect(() => encodeCommand({ cla: 0, ins: Symbol('x') as never, p1: 0, p2: 0 })).toThrow(InvalidInputError);
    expect(() => encodeCommand({ cla: 0, ins: 0, p1: 0, p2: 0, ne: hexText as never })).toThrow(/^Ne must be 0\.\.65536, got a string of 32 characters$/);
    expect(() => encodeCommand(undefined as never)).toThrow(InvalidInputError);
    for (const [what, call] of [
      ['decodeCommand(null)', () => decodeCommand(null as never)], ['decodeResponse(5)', () => decodeResponse(5 as never)],
      ['encodeResponse(undefined)', () => encodeResponse(undefined as never)], ['encodeResponse of a huge length', () => encodeResponse({ data: { length: 2 ** 32 } as never, sw: 0x9000 })],
      ['encodeResponse with sw -1', () => encodeResponse({ data: new Uint8Array(0), sw: -1 })],
      ['encodeResponse with sw 0x10000', () => encodeResponse({ data: new Uint8Array(0), sw: 0x10000 })],
      ['hex(undefined)', () => hex(undefined as never)], ['fromHex(5)', () => fromHex(5 as never)],
    ] as const) {
      expect(call, what).toThrow(InvalidInputError);
    }
    expect(() => decodeCommand(fromHex('00A404'))).toThrow(ApduError);
    expect(() => decodeCommand(fromHex('00A4040005A0000001'))).toThrow(ApduError);
    expect(() => decodeCommand(fromHex('00A40400000005A0'))).toThrow(ApduError);
    expect(() => decodeResponse(fromHex('90'))).toThrow(ApduError);
    expect(decodeResponse(fromHex('01029000'))).toEqual({ data: fromHex('0102'), sw: 0x9000 });
  });

  it('an extended APDU with Lc 0000 is refused, not read as case 4; its well-formed neighbours still parse', () => {
    // 7816-3 gives extended Lc 1..65535: 00 0000 0100 would otherwise be case 4 with no data and Ne 256.
    expect(() => decodeCommand(fromHex('801000000000000100'))).toThrow(ApduError);
    const shape = (w: string) => {
      const d = decodeCommand(fromHex(w));
      return [d.case, d.extended, hex(d.data), d.ne];
    };
    expect(shape('80100000000100')).toEqual([2, true, '', 256]);
    expect(shape('80100000000001AA')).toEqual([3, true, 'AA', 0]);
    expect(shape('80100000000001AA0100')).toEqual([4, true, 'AA', 256]);
    expect(shape('80100000000001AA0000')).toEqual([4, true, 'AA', 65536]);
  });

  it('encodes BER-TLV with one- and two-byte tags and long lengths', () => {
    expect(hex(encodeTlv(0x84, fromHex('01')))).toBe('840101');
    expect(hex(encodeTlv(0x7f49, bytes(65)).subarray(0, 3))).toBe('7F4941');
    expect(hex(encodeTlv(0x86, bytes(200)).subarray(0, 3))).toBe('8681C8');
    expect(hex(encodeTlv(0x86, bytes(300)).subarray(0, 4))).toBe('8682012C');
    const parsed = decodeTlvs(new Uint8Array([...encodeTlv(0x80, fromHex('0004')), ...encodeTlv(0xdf01, bytes(300))]));
    expect(parsed.map((t) => [t.tag, t.value.length])).toEqual([[0x80, 2], [0xdf01, 300]]);
    expect(() => decodeTlvs(fromHex('8405'))).toThrow(ApduError);
  });

  it('BER-TLV truncated in its length octets or its value is refused, not read short', () => {
    // 82 announces two length bytes and one follows; a value of 2 bytes has one: neither may yield a shorter value.
    expect(() => decodeTlvs(fromHex('048201'))).toThrow(/truncated TLV length/);
    expect(() => decodeTlvs(fromHex('0402AA'))).toThrow(/TLV 4 of length 2 runs past the data/);
    for (const w of ['048201', '0402AA', '0481', '04830100', '80010102AA']) expect(() => decodeTlvs(fromHex(w)), w).toThrow(ApduError);
  });

  it('BER-TLV values of 64 KiB and more take the 83 form; what no form states is refused', () => {
    const v = bytes(70000, (i) => (i * 7) & 0xff);
    const e = encodeTlv(0xc2, v);
    expect(hex(e.subarray(0, 5))).toBe('C283011170');
    const [t] = decodeTlvs(e);
    expect(t!.value.length).toBe(70000);
    expect(hex(t!.value)).toBe(hex(v));
    expect(() => encodeTlv(0xc2, new Uint8Array(0x1000000))).toThrow(LengthError);
    // 80 is BER's indefinite form, not a length of 128
    expect(() => decodeTlvs(fromHex(`C280${'00'.repeat(128)}`))).toThrow(ApduError);
  });

  it('BER-TLV tags of the profile only: 00 / FF padding between objects skipped, tags of three bytes refused, not misread', () => {
    expect(decodeTlvs(fromHex('00FF8001AA0000DF2001BBFFFF')).map((t) => [t.tag, hex(t.value)])).toEqual([[0x80, 'AA'], [0xdf20, 'BB']]);
    // DF 81 01: a three-byte tag (b8 of the second byte says more follow) whose value holds what looks like objects.
    expect(() => decodeTlvs(fromHex('DF810103810101'))).toThrow(/more than two bytes/);
    // A first tag byte that announces a second one, at the end of the data: refused, not read as a one-byte tag.
    for (const w of ['DF', '8001AA5F']) expect(() => decodeTlvs(fromHex(w)), w).toThrow(/^truncated TLV tag$/);
    // Second bytes below 1F are tags of their own in 7816-4 and EMV practice (the profile's DF01).
    expect(decodeTlvs(fromHex('DF0101009F1F0100')).map((t) => t.tag)).toEqual([0xdf01, 0x9f1f]);
    for (const tag of [0x5f8101, 0, -1, 1.5]) expect(() => encodeTlv(tag, bytes(1)), String(tag)).toThrow(RangeError);
  });

  it('fromHex errors give a length and a position, never the text (it may be a key)', () => {
    for (const text of ['00112233445566778899X', '00112233445566778899A']) {
      const err = (() => {
        try {
          fromHex(text);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err).toBeInstanceOf(InvalidInputError);
      expect(err!.message).toMatch(/21/);
      expect(err!.message).not.toContain('0011223344');
    }
  });
});

describe('joinParts', () => {
  // Response parts of a secret exchange (keys, plaintext) must not stay behind once copied into the joined result.
  it('a secret exchange\'s parts are zeroized after joining; otherwise they are left as they were', () => {
    const parts = () => [fromHex('0102'), fromHex('0304'), fromHex('05')];
    const secret = parts();
    expect(hex(joinParts(secret, true))).toBe('0102030405');
    expect(secret.map(hex)).toEqual(['0000', '0000', '00']);
    for (const flag of [false, undefined]) {
      const kept = parts();
      expect(hex(joinParts(kept, flag))).toBe('0102030405');
      expect(kept.map(hex), String(flag)).toEqual(['0102', '0304', '05']);
    }
    // A single part is the result itself: returned as it is, not zeroized.
    const one = fromHex('AABB');
    expect(joinParts([one], true)).toBe(one);
    expect(hex(one)).toBe('AABB');
  });
});

describe('command data is read through its typed-array slots', () => {
  it('a detached view or a value that is not bytes is an InvalidInputError; a length that lies changes nothing', () => {
    const gone = Uint8Array.of(1, 2, 3);
    structuredClone(gone.buffer, { transfer: [gone.buffer] });
    expect(() => encodeCommand({ cla: 0, ins: 0xda, p1: 0, p2: 1, data: gone })).toThrow(/command data is a view of a detached ArrayBuffer/);
    expect(() => encodeCommand({ cla: 0, ins: 0xda, p1: 0, p2: 1, data: 'abcd' as unknown as Uint8Array })).toThrow(InvalidInputError);
    const lying = Uint8Array.of(1, 2, 3);
    Object.defineProperty(lying, 'length', { value: 300 });
    expect(hex(encodeCommand({ cla: 0, ins: 0xda, p1: 0, p2: 1, data: lying }))).toBe('00DA000103010203');
  });
});

describe('transport layers', () => {
  it('raw: short-only transport asks for at most 256 bytes', async () => {
    const ch = scripted([['00B0000000', '019000']]);
    const t = raw(ch);
    expect((await t.transmit({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1000 })).sw).toBe(0x9000);
    expect(t.sent).toBe(1);
    ch.done();
  });

  it('raw: a secret command\'s encoding is zeroized once the channel settled, answered or not; another is left as sent', async () => {
    for (const [secret, fails] of [[true, false], [true, true], [false, false]] as const) {
      const sent: Uint8Array[] = [];
      const t = raw({ transmit: async (a) => (sent.push(a), fails ? Promise.reject(new Error('the card was removed')) : fromHex('9000')) });
      await t.transmit({ cla: 0, ins: 0xda, p1: 1, p2: 2, data: fromHex('31323334'), secret }).catch(() => undefined);
      expect(hex(sent[0]!), `secret ${secret}, fails ${fails}`).toBe(secret ? '00'.repeat(9) : '00DA01020431323334');
    }
  });

  it('GET RESPONSE collects 61xx chains, on the command\'s channel', async () => {
    const ch = scripted([
      ['01CA010000', 'AAAA6102'],
      ['01C0000002', 'BBBB6100'],
      ['01C0000000', `${'CC'.repeat(3)}9000`],
    ]);
    const r = await new GetResponseLayer(raw(ch)).transmit({ cla: 0x01, ins: 0xca, p1: 1, p2: 0, ne: 256 });
    expect(hex(r.data)).toBe('AAAABBBBCCCCCC');
    expect(r.sw).toBe(0x9000);
    ch.done();
  });

  it('GET RESPONSE also follows 9Fxx (UICC) and stops after the round limit', async () => {
    const ok = scripted([['80F2000000', '9F04'], ['00C0000004', '010203049000']]);
    expect(hex((await new GetResponseLayer(raw(ok)).transmit({ cla: 0x80, ins: 0xf2, p1: 0, p2: 0, ne: 256 })).data)).toBe('01020304');
    ok.done();
    const endless: ByteChannel = { transmit: async () => fromHex('006101') };
    await expect(new GetResponseLayer(raw(endless), 3).transmit({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256 })).rejects.toThrow(
      /after 3 GET RESPONSE rounds/,
    );
  });

  it('a card that keeps announcing data without sending any fails after 3 empty GET RESPONSEs, whatever a large result would allow', async () => {
    let sent = 0;
    const stuck: ByteChannel = { transmit: async () => (sent++, fromHex('6100')) };
    // 16 MiB allowed: 65,537 rounds of 256 bytes, which a stuck card would otherwise take one by one.
    await expect(new GetResponseLayer(raw(stuck)).transmit({ cla: 0, ins: 0x2a, p1: 0x80, p2: 0x86, ne: 65536, most: 16 << 20 }))
      .rejects.toThrow(/announced more data 3 times in a row without sending any/);
    expect(sent).toBe(4);
    // Empty answers between answers with data are not a stuck card: the count starts again.
    const slow = scripted([
      ['002A808600', '6100'], ['00C0000000', '6100'], ['00C0000000', '6100'], ['00C0000000', 'AA6100'],
      ['00C0000000', '6100'], ['00C0000000', '6100'], ['00C0000000', 'BB9000'],
    ]);
    expect(hex((await new GetResponseLayer(raw(slow)).transmit({ cla: 0, ins: 0x2a, p1: 0x80, p2: 0x86, ne: 256 })).data)).toBe('AABB');
    slow.done();
  });

  it('a response longer than Ne is refused as it arrives; Le 00 / 0000 take as much as the stack allows', async () => {
    // [Ne, answers to the command and then to each GET RESPONSE, APDUs sent before the refusal]
    const cases: [number | undefined, string[], number][] = [
      [8, [`${'11'.repeat(9)}9000`], 1],
      [8, [`${'11'.repeat(8)}6101`, '229000'], 1], // Ne used up, yet more announced: no GET RESPONSE
      [8, [`${'11'.repeat(4)}6104`, `${'22'.repeat(5)}9000`], 2],
      [undefined, ['119000'], 1], // case 3: no data expected
      [256, [...Array(4).fill(`${'11'.repeat(256)}6100`), '9000'], 4], // past maxResponseTotal 1000
    ];
    for (const [ne, answers, sent] of cases) {
      const given: Uint8Array[] = [];
      const ch: ByteChannel = {
        transmit: async () => {
          given.push(fromHex(answers[given.length]!));
          return given[given.length - 1]!;
        },
      };
      const t = createTransport(ch, { extended: false, maxResponseTotal: 1000 });
      const err = await t.transport.transmit({ cla: 0, ins: 0xca, p1: 0xdf, p2: 2, ne, secret: true }).catch((e: unknown) => e);
      expect(err, `Ne ${ne}, ${answers[0]!.slice(-4)}`).toBeInstanceOf(ApduError);
      expect(t.raw.sent).toBe(sent);
      // A secret exchange's parts are zeroized when refused (the status words are not data).
      expect(given.every((g) => g.subarray(0, g.length - 2).every((x) => x === 0))).toBe(true);
    }
    // 65536 bytes answered to Ne 65536 pass by default; one more does not.
    const big = (n: number): ByteChannel => ({ transmit: async (a) => (a[1] === 0xc0 ? Uint8Array.of(...new Uint8Array(n - 65000), 0x90, 0) : Uint8Array.of(...new Uint8Array(65000), 0x61, 0)) });
    const read = (n: number) => createTransport(big(n), { extended: true }).transport.transmit({ cla: 0, ins: 0xca, p1: 2, p2: 1, ne: 65536 });
    expect((await read(65536)).data.length).toBe(65536);
    await expect(read(65537)).rejects.toBeInstanceOf(ApduError);
  });

  it('the secret data fetched so far is zeroized whatever ends the GET RESPONSE rounds early: a GET RESPONSE without an answer, the round limit', async () => {
    const part = (byte: string) => `${byte.repeat(16)}6110`; // 16 bytes, 16 more to come
    const cases: [string, [string, string | Error][], [string, string]][] = [
      ['no answer', [['0084000000', part('11')], ['00C0000010', part('22')], ['00C0000010', new Error('the card was removed')]], ['Error', 'the card was removed']],
      ['the round limit', [['0084000000', part('11')], ...['22', '33', '44'].map((b): [string, string] => ['00C0000010', part(b)])],
        ['ApduError', 'GET CHALLENGE: response still incomplete after 3 GET RESPONSE rounds']],
    ];
    const got = [];
    for (const [what, script] of cases) {
      const ch = scripted(script);
      const err = await new GetResponseLayer(raw(ch), 3).transmit({ cla: 0, ins: 0x84, p1: 0, p2: 0, ne: 256, secret: true })
        .then(() => undefined, (e: Error) => [e.constructor.name, e.message]);
      ch.done();
      // The data of each answer the card gave (the status words are not data).
      got.push([what, err, ch.given.map((g) => hex(g.subarray(0, g.length - 2)))]);
    }
    expect(got).toEqual(cases.map(([what, script, error]) => [what, error, script.filter(([, a]) => typeof a === 'string').map(() => '00'.repeat(16))]));
  });

  it('a command\'s `most` allows the GET RESPONSE rounds its data takes, a 6Cxx to one of them included, whatever maxRounds says', async () => {
    const ch = scripted([['00CA010000', '6100'], ['00C0000000', '6C10'], ['00C0000010', `${'11'.repeat(16)}9000`]]);
    const r = await new GetResponseLayer(raw(ch), 0).transmit({ cla: 0, ins: 0xca, p1: 1, p2: 0, ne: 256, most: 16 });
    expect([hex(r.data), r.sw]).toEqual(['11'.repeat(16), 0x9000]);
    ch.done();
  });

  it('6Cxx to a GET RESPONSE repeats the GET RESPONSE with that Le and keeps the data, never re-running the command', async () => {
    const ch = scripted([
      ['00478000038401 0100', `${'AA'.repeat(16)}6100`],
      ['00C0000000', '6C10'],
      ['00C0000010', `${'BB'.repeat(16)}9000`],
    ]);
    const { transport, raw: wire } = createTransport(ch, { extended: false });
    const r = await transport.transmit({ cla: 0, ins: 0x47, p1: 0x80, p2: 0, data: fromHex('840101'), ne: 256 });
    expect(hex(r.data)).toBe('AA'.repeat(16) + 'BB'.repeat(16));
    expect(wire.sent).toBe(3);
    ch.done();
  });

  it('6Cxx re-sends the command once with the corrected Le', async () => {
    const ch = scripted([['00B0000010', '6C08'], ['00B0000008', '01020304050607089000']]);
    const r = await new LeCorrectionLayer(raw(ch)).transmit({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 16 });
    expect(r.data.length).toBe(8);
    ch.done();
  });

  it('6Cxx cannot raise what a command allows: a larger Le than its Ne or its `most` is refused, nothing re-sent', async () => {
    for (const [cmd, sw, allowed] of [
      [{ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 16 }, '6C20', 16],
      [{ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 16, most: 8 }, '6C0C', 8], // `most` lowers an exact Ne
      [{ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256, most: 32 }, '6C00', 32],
      [{ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 65536, most: 64 }, '6CFF', 64],
    ] as const) {
      const ch = scripted([[hex(encodeCommand({ ...cmd, ne: Math.min(cmd.ne, 256) })), sw]]);
      await expect(new LeCorrectionLayer(raw(ch)).transmit(cmd)).rejects.toThrow(new RegExp(`more than the ${allowed} bytes the command allows`));
      ch.done();
    }
    // Through the default stack: a 6Cxx within `most`, then a card that sends more than it said, is cut at `most`.
    const ch = scripted([['00B0000000', '6C20'], ['00B0000020', `${'11'.repeat(40)}9000`]]);
    const { transport } = createTransport(ch, { extended: false });
    await expect(transport.transmit({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 256, most: 32 })).rejects.toThrow(ApduError);
    ch.done();
  });

  it('chains long data with CLA b5 when extended length is unavailable', async () => {
    const data = bytes(600);
    const link = (from: number, to: number) => hex(data.subarray(from, to));
    const ch = scripted([
      [`102A9080FF${link(0, 255)}00`, '9000'],
      [`102A9080FF${link(255, 510)}00`, '9000'],
      [`002A90805A${link(510, 600)}00`, `${'11'.repeat(32)}9000`],
    ]);
    const r = await new ChainingLayer(raw(ch)).transmit({ cla: 0, ins: 0x2a, p1: 0x90, p2: 0x80, data, ne: 256 });
    expect(r.data.length).toBe(32);
    ch.done();
  });

  it('chaining keeps output of intermediate links (streaming PSO)', async () => {
    const ch = scripted([['102A8680FF' + '11'.repeat(255) + '00', 'AA'.repeat(250) + '9000'], ['002A868001' + '11' + '00', 'BB'.repeat(22) + '9000']]);
    const r = await new ChainingLayer(raw(ch)).transmit({ cla: 0, ins: 0x2a, p1: 0x86, p2: 0x80, data: new Uint8Array(256).fill(0x11), ne: 256 });
    expect(hex(r.data)).toBe('AA'.repeat(250) + 'BB'.repeat(22));
    ch.done();
  });

  it('chains at the limit the card announced, also on an extended stack', async () => {
    const links: [number, number][] = [];
    const ch: ByteChannel = {
      async transmit(apdu) {
        const c = decodeCommand(apdu);
        links.push([c.cla, c.data.length]);
        return fromHex('9000');
      },
    };
    const { transport } = createTransport(ch, { extended: true, maxCommandData: 0xff00 });
    await transport.transmit({ cla: 0, ins: 0xda, p1: 2, p2: 1, data: bytes(65300) });
    expect(links).toEqual([[0x10, 0xff00], [0x00, 20]]);
    expect(() => new ChainingLayer(raw(ch), 0)).toThrow(LengthError);
  });

  it('chaining stops at a link the card refuses; extended transports send one APDU', async () => {
    const data = bytes(300);
    const refused = scripted([[`10DA0102FF${hex(data.subarray(0, 255))}`, '6A84']]);
    const err = await new ChainingLayer(raw(refused)).transmit({ cla: 0, ins: 0xda, p1: 1, p2: 2, data }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StatusWordError);
    expect((err as StatusWordError).sw).toBe(0x6a84);
    const ext = scripted([[`00DA010200012C${hex(data)}`, '9000']]);
    await new ChainingLayer(raw(ext, true)).transmit({ cla: 0, ins: 0xda, p1: 1, p2: 2, data });
    ext.done();
  });

  // A review: a secret chain that failed part way left what its earlier links answered in memory.
  it('a secret chain that fails part way zeroizes what its links answered, the failing link\'s too', async () => {
    const answered: Uint8Array[] = [];
    const answers = [{ data: new Uint8Array(16).fill(0xaa), sw: 0x9000 }, { data: new Uint8Array(16).fill(0xbb), sw: 0x6a80 }];
    const inner = {
      maxCommandData: 4, maxResponseData: 256,
      async transmit() {
        const r = answers[answered.length]!;
        answered.push(r.data);
        return r;
      },
    };
    for (const secret of [true, false]) {
      answered.length = 0;
      answers.forEach((a, i) => a.data.fill(i ? 0xbb : 0xaa));
      const err = await new ChainingLayer(inner).transmit({ cla: 0, ins: 0x2a, p1: 0x86, p2: 0x80, data: bytes(12), ne: 256, secret }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StatusWordError);
      expect(answered.map((d) => d.every((b) => b === 0)), `secret: ${secret}`).toEqual(secret ? [true, true] : [false, false]);
    }
  });

  it('maps status words to typed errors', async () => {
    const ch = scripted([['002241B6', '6982']]);
    const err = await new StatusLayer(raw(ch)).transmit({ cla: 0, ins: 0x22, p1: 0x41, p2: 0xb6 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StatusWordError);
    expect((err as StatusWordError).sw).toBe(0x6982);
    expect((err as StatusWordError).code).toBe('ERR_CARD_STATUS');
    expect((err as Error).message).toMatch(/MANAGE SECURITY ENVIRONMENT.*6982.*security status not satisfied/);
    const warn = scripted([['00B0000001', '006282']]);
    expect((await new StatusLayer(raw(warn), true).transmit({ cla: 0, ins: 0xb0, p1: 0, p2: 0, ne: 1 })).sw).toBe(0x6282);
  });

  it('61xx and 6Cxx are named with their byte count, and xx = 00 stands for 256 (7816-4), not for none', () => {
    expect(statusWordMeaning(0x6110)).toBe('16 more response bytes available');
    expect(statusWordMeaning(0x6100)).toBe('256 more response bytes available');
    expect(statusWordMeaning(0x6c08)).toBe('wrong Le, 8 bytes available');
    expect(statusWordMeaning(0x6c00)).toBe('wrong Le, 256 bytes available');
  });

  it('a status word a GET RESPONSE gave is its own, not the command\'s result: named so, and no warning passes as the command\'s', async () => {
    for (const [sw, allowWarnings] of [['6A82', false], ['6281', true]] as const) {
      const ch = scripted([['00CA010000', 'AAAA6102'], ['00C0000002', `BBBB${sw}`]]);
      const err = await new StatusLayer(new GetResponseLayer(raw(ch)), allowWarnings).transmit({ cla: 0, ins: 0xca, p1: 1, p2: 0, ne: 256 }).catch((e: unknown) => e);
      ch.done();
      expect(err, sw).toBeInstanceOf(StatusWordError);
      const e = err as StatusWordError;
      expect([e.command, e.sw, e.answers(0xca), e.answers(0xc0)]).toEqual(['GET RESPONSE', parseInt(sw, 16), false, true]);
    }
  });

  it('logical channels: MANAGE CHANNEL open/close and CLA encoding', async () => {
    expect(claForChannel(0x00, 1)).toBe(0x01);
    expect(claForChannel(0x10, 3)).toBe(0x13);
    expect(claForChannel(0x0c, 2)).toBe(0x0e);
    expect(claForChannel(0x00, 4)).toBe(0x40);
    expect(claForChannel(0x10, 19)).toBe(0x5f);
    expect(claForChannel(0x0c, 5)).toBe(0x61);
    expect(claForChannel(0x80, 6)).toBe(0xc2);
    for (let c = 0; c < 20; c++) expect(channelOfCla(claForChannel(0, c))).toBe(c);
    expect(() => claForChannel(0, 20)).toThrow(LengthError);

    const ch = scripted([
      ['0070000001', '059000'],
      ['41A4040006F053454E560100', '6F009000'],
      ['00708005', '9000'],
    ]);
    const lc = await LogicalChannel.open(raw(ch));
    expect(lc.channel).toBe(5);
    expect(hex(await selectAid(lc, fromHex('F053454E5601')))).toBe('6F00');
    await lc.close();
    await lc.close();
    await expect(lc.transmit({ cla: 0, ins: 0xca, p1: 0, p2: 0 })).rejects.toThrow(/closed/);
    ch.done();

    // Not a logical channel: refused, and nothing follows the open (no command on it, no close).
    for (const n of ['00', '14', 'FF']) {
      const bad = scripted([['0070000001', `${n}9000`]]);
      await expect(LogicalChannel.open(raw(bad))).rejects.toBeInstanceOf(ApduError);
      bad.done();
    }
  });

  it('a refused MANAGE CHANNEL or SELECT is a StatusWordError named after it; an open answering other than one byte is an ApduError; a refused close still closes the channel here', async () => {
    const cases: [string[][], (t: RawTransport) => Promise<unknown>, string, number][] = [
      [[['0070000001', '6A81']], (t) => LogicalChannel.open(t), 'MANAGE CHANNEL (open)', 0x6a81],
      [[['0070000001', '059000'], ['00708005', '6881']], async (t) => (await LogicalChannel.open(t)).close(), 'MANAGE CHANNEL (close)', 0x6881],
      [[['00A4040006F053454E560100', '6A82']], (t) => selectAid(t, fromHex('F053454E5601')), 'SELECT', 0x6a82],
    ];
    for (const [script, run, name, sw] of cases) {
      const ch = scripted(script as [string, string][]);
      const err = await run(raw(ch)).catch((e: unknown) => e);
      ch.done();
      expect(err, name).toBeInstanceOf(StatusWordError);
      expect([(err as StatusWordError).command, (err as StatusWordError).sw], name).toEqual([name, sw]);
    }
    for (const answer of ['9000', '05069000']) {
      const ch = scripted([['0070000001', answer]]);
      await expect(LogicalChannel.open(raw(ch)), answer).rejects.toThrow(new ApduError(`MANAGE CHANNEL (open) returned ${(answer.length - 4) / 2} bytes instead of the channel number`));
      ch.done();
    }
    const ch = scripted([['0070000001', '059000'], ['00708005', '6881']]);
    const lc = await LogicalChannel.open(raw(ch));
    await expect(lc.close()).rejects.toBeInstanceOf(StatusWordError);
    await lc.close();
    await expect(lc.transmit({ cla: 0, ins: 0xca, p1: 0, p2: 0 })).rejects.toThrow(/logical channel 5 is closed/);
    ch.done();
  });

  it('commandName names an instruction it does not know by its INS, and refuses what is no command', () => {
    expect(commandName({ ins: 0xa4 })).toBe('SELECT');
    expect(commandName({ ins: 0x0e })).toBe('INS 0E');
    for (const bad of [undefined, null, 0xa4, 'SELECT']) expect(() => commandName(bad as never), String(bad)).toThrow(InvalidInputError);
    expect(() => commandName({ ins: 256 })).toThrow(InvalidInputError);
  });

  it('a chaining layer takes command data up to the extended maximum, whatever the layer below carries in one APDU', () => {
    expect(new ChainingLayer(raw(scripted([]))).maxCommandData).toBe(65535);
    expect(raw(scripted([])).maxCommandData).toBe(255);
  });

  it('logging masks secret data and names commands and status words', async () => {
    const lines: string[] = [];
    const ch = scripted([
      ['0020000104 31323334', '63C2'],
      ['00DA0201 03 AABBCC', '9000'],
      ['00CA020100', 'DDEEFF9000'],
      ['00A4040005A00000015100', '6A82'],
    ]);
    const t = new LoggingLayer(raw(ch), (l) => lines.push(l));
    await t.transmit({ cla: 0, ins: 0x20, p1: 0, p2: 1, data: fromHex('31323334') });
    await t.transmit({ cla: 0, ins: 0xda, p1: 2, p2: 1, data: fromHex('AABBCC'), secret: true });
    await t.transmit({ cla: 0, ins: 0xca, p1: 2, p2: 1, ne: 256, secret: true });
    await t.transmit({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: fromHex('A000000151'), ne: 256 });
    const text = lines.join('\n');
    expect(text).not.toMatch(/31323334|AABBCC|DDEEFF/);
    expect(text).toContain('<4 bytes masked>');
    expect(text).toContain('<3 bytes masked> 9000');
    expect(text).toContain('63C2  (verification failed, 2 tries left)');
    expect(text).toContain('> 00A40400 A000000151 Ne=256  (SELECT)');
    expect(text).toContain('6A82  (file or application not found)');
    ch.done();
  });

  it('the default stack combines the layers', async () => {
    const lines: string[] = [];
    const ch = scripted([
      ['102A9080FF' + 'AB'.repeat(255) + '00', '9000'],
      ['002A90802D' + 'AB'.repeat(45) + '00', '6C20'],
      ['002A90802D' + 'AB'.repeat(45) + '20', '01'.repeat(16) + '6110'],
      ['00C0000010', '02'.repeat(16) + '9000'],
      ['0084000008', '6A86'],
    ]);
    const { transport, raw: wire } = createTransport(ch, { extended: false, log: (l) => lines.push(l) });
    const r = await transport.transmit({ cla: 0, ins: 0x2a, p1: 0x90, p2: 0x80, data: new Uint8Array(300).fill(0xab), ne: 256 });
    expect(hex(r.data)).toBe('01'.repeat(16) + '02'.repeat(16));
    await expect(transport.transmit({ cla: 0, ins: 0x84, p1: 0, p2: 0, ne: 8 })).rejects.toBeInstanceOf(StatusWordError);
    expect(wire.sent).toBe(5);
    expect(lines.length).toBe(10);
    ch.done();
  });

  it('refuses a wrong argument to any layer, helper or stack with a typed error, before the card sees anything', async () => {
    const ch = scripted([]);
    const wire = raw(ch);
    const ok = { cla: 0, ins: 0xca, p1: 1, p2: 0, ne: 256 };
    const layers = [
      wire, new LoggingLayer(wire, () => {}), new GetResponseLayer(wire), new LeCorrectionLayer(wire), new ChainingLayer(wire),
      new StatusLayer(wire), LogicalChannel.basic(wire), createTransport(ch, { extended: false }).transport,
    ];
    const commands: Array<[unknown, typeof InvalidInputError | typeof LengthError]> = [
      ...[undefined, null, 5, 'x', {}, { ...ok, cla: 256 }, { ...ok, ins: 'x' }, { ...ok, data: 5 }, { ...ok, data: 'A000000151' },
        { ...ok, most: 1.5 }, { ...ok, secret: 'yes' }].map((c) => [c, InvalidInputError] as [unknown, typeof InvalidInputError]),
      [{ ...ok, ne: -1 }, LengthError], [{ ...ok, ne: 65537 }, LengthError],
    ];
    for (const t of layers) {
      for (const [cmd, type] of commands) {
        const err = await t.transmit(cmd as CommandApdu).catch((e: unknown) => e);
        expect(err, `${t.constructor.name} ${JSON.stringify(cmd)}`).toBeInstanceOf(type);
      }
    }
    const calls: Array<[string, () => unknown]> = [
      ['claForChannel CLA', () => claForChannel(0x100, 1)], ['claForChannel CLA text', () => claForChannel('x' as never, 1)],
      ['channelOfCla', () => channelOfCla('x' as never)], ['RawTransport channel', () => new RawTransport(undefined as never, { extended: false })],
      ['RawTransport channel without transmit', () => new RawTransport({} as never, { extended: false })],
      ['RawTransport options', () => new RawTransport(ch, 'short' as never)], ['RawTransport extended', () => new RawTransport(ch, { extended: 'no' as never })],
      ['LoggingLayer log', () => new LoggingLayer(wire, 'x' as never)], ['layer below', () => new StatusLayer(undefined as never)],
      ['GetResponseLayer rounds', () => new GetResponseLayer(wire, 'x' as never)], ['GetResponseLayer total', () => new GetResponseLayer(wire, 3, 0)],
      ['StatusLayer warnings', () => new StatusLayer(wire, 1 as never)], ['LogicalChannel.basic', () => LogicalChannel.basic(null as never)],
      ['createTransport options', () => createTransport(ch, 'short' as never)], ['createTransport channel', () => createTransport(undefined as never, { extended: false })],
      ['createTransport rounds', () => createTransport(ch, { extended: false, maxGetResponseRounds: 1.5 })],
      ['createTransport log', () => createTransport(ch, { extended: false, log: 'x' as never })],
      ['createTransport checkStatus', () => createTransport(ch, { extended: false, checkStatus: 'no' as never })],
      ['encodeCommand options', () => encodeCommand(ok, 'short' as never)],
    ];
    for (const [what, call] of calls) expect(call, what).toThrow(InvalidInputError);
    for (const aid of [undefined, 5, 'A000000151', [0xa0, 0, 0, 1, 0x51]]) {
      await expect(selectAid(wire, aid as never), String(aid)).rejects.toBeInstanceOf(InvalidInputError);
    }
    await expect(selectAid(undefined as never, fromHex('A000000151'))).rejects.toBeInstanceOf(InvalidInputError);
    // 7816-4 AIDs are 5 to 16 bytes: a shorter or longer one is refused before the card sees it.
    for (const n of [4, 17]) await expect(selectAid(wire, bytes(n)), `${n} bytes`).rejects.toThrow(new RegExp(`^an AID is 5\\.\\.16 bytes, got ${n}$`));
    await expect(LogicalChannel.open(undefined as never)).rejects.toBeInstanceOf(InvalidInputError);
    // A caller's text is shown by its length only: it may be a secret passed by mistake.
    expect(() => claForChannel(0, 'hunter2' as never)).toThrow(/got a string of 7 characters/);
    expect(() => new ChainingLayer(wire, 'hunter2' as never)).toThrow(/got a string of 7 characters/);
    ch.done();
  });
});
