// Edges of the senv virtual card (card OS + senv applet, in process, no pcscd)
// that a mutation review found unpinned: each test pins one rule of
// docs/apdu-profile.md (or the ISO/IEC 7816-4 convention it follows) that a
// one-token change to src/virtual-card/ left unnoticed. The card is driven by
// raw APDUs, so that every status word is seen as the card gives it.
import { describe, expect, it } from 'vitest';
import { encodeCommand, hex, type CommandApdu } from '../../src/apdu/apdu.ts';
import { CRT, DO, INS, PSO, SENV_AID, TAG } from '../../src/apdu/profile.ts';
import { decodeTlvs, findTlv } from '../../src/apdu/tlv.ts';
import { ecdsa, gcm, hmac, initSync, sha256 } from '../../src/core/index.ts';
import { CardStatus, SHORT_LIMITS, VirtualCardOs } from '../../src/virtual-card/card.ts';
import { NVM_CAPACITY } from '../../src/virtual-card/keystore.ts';
import { spyUint8Arrays } from './uint8array-spy.ts';
import { allZero, cmds, macWith, makeCard, pattern, publicPoint, slots, text } from './vcard-kit.ts';

initSync();

describe('virtual card edges (mutation review)', () => {
  // 1. docs/apdu-profile.md, PUT DATA: "03 | ref | empty | deletes the key in slot ref (zeroized)".
  it('1. DELETE KEY (PUT DATA 03) zeroizes the secret bytes it deletes, for imported and generated keys', () => {
    const c = makeCard();
    const key = pattern(32, 0xa5);
    c.ok(cmds.putKey(0x10, 25, [1], key));
    c.ok(cmds.generate(33, [0x11]));
    const imported = c.store.keys.get(0x10)!.secret!;
    const generated = c.store.keys.get(0x11)!.secret!;
    expect(hex(imported)).toBe(hex(key));
    expect(allZero(generated)).toBe(false);
    c.ok(cmds.deleteKey(0x10));
    c.ok(cmds.deleteKey(0x11));
    // The store's own bytes are overwritten, not only dropped from the map.
    expect(allZero(imported), 'imported HMAC key zeroized').toBe(true);
    expect(allZero(generated), 'generated ECDSA scalar zeroized').toBe(true);
    expect(c.store.keys.has(0x10) || c.store.keys.has(0x11)).toBe(false);
    expect(c.sw(cmds.deleteKey(0x10))).toBe('6A88');
    expect(slots(c)).toEqual([]);
    // Sensitive data objects alike: deleted (PUT DATA 04) and overwritten (PUT DATA 02) bytes are zeroized.
    c.ok(cmds.putObject(7, pattern(40, 3)));
    const first = c.store.objects.get(7)!;
    c.ok(cmds.putObject(7, pattern(40, 9)));
    expect(allZero(first), 'overwritten object zeroized').toBe(true);
    const second = c.store.objects.get(7)!;
    c.ok(cmds.deleteObject(7));
    expect(allZero(second), 'deleted object zeroized').toBe(true);
    expect(c.sw(cmds.getData(DO.OBJECT, 7))).toBe('6A88');
  });

  // 2. 61xx + GET RESPONSE (transport rules): the leftover data is for the GET RESPONSE that follows;
  // any other command on the channel discards it (the usual 7816-4 reading), and there is nothing to
  // fetch once it was fetched.
  it('2. leftover GET RESPONSE data: fetched once, discarded by any other command on the channel (then GET RESPONSE is refused 6985)', () => {
    const c = makeCard();
    const obj = pattern(300, 7);
    c.ok(cmds.putObject(5, obj));
    const head = c.send(cmds.getData(DO.OBJECT, 5, 256));
    expect(head.sw).toBe('612C'); // 44 bytes left
    const tail = c.send(cmds.getResponse(0x2c));
    expect(tail.sw).toBe('9000');
    expect(hex(new Uint8Array([...head.data, ...tail.data]))).toBe(hex(obj));
    // everything fetched: nothing is handed out twice
    expect(c.send(cmds.getResponse(0x2c))).toEqual({ data: new Uint8Array(0), sw: '6985' });

    // Another command (answered 9000) between: the leftover is gone.
    expect(c.send(cmds.getData(DO.OBJECT, 5, 256)).sw).toBe('612C');
    c.ok(cmds.getData(0xdf, 0x03, 8));
    expect(c.send(cmds.getResponse(0x2c))).toEqual({ data: new Uint8Array(0), sw: '6985' });
    // Another command the applet refuses: gone too.
    expect(c.send(cmds.getData(DO.OBJECT, 5, 256)).sw).toBe('612C');
    expect(c.sw(cmds.getData(DO.OBJECT, 6))).toBe('6A88');
    expect(c.send(cmds.getResponse(0x2c))).toEqual({ data: new Uint8Array(0), sw: '6985' });
    // The next link of a chain whose link answered 61xx: the link's leftover output is gone.
    c.ok(cmds.putKey(0x40, 13, [1], pattern(16, 1)));
    c.ok(cmds.mse(CRT.CT, 13, [0x40], [[TAG.IV, new Array(16).fill(0)]]));
    const link = c.send({ ...cmds.pso(0x8680, pattern(64, 2), true), ne: 16 });
    expect(link.sw).toBe('6130');
    expect(c.send(cmds.pso(0x8680, pattern(16, 3))).sw).toBe('9000');
    expect(c.sw(cmds.getResponse())).toBe('6985');
  });

  // 3. Chaining: "A link the card refuses ends its chain too" (and card.ts: "the next link must not
  // continue half a message").
  it('3. a refused link ends its chain: the next unchained command is no continuation of it', () => {
    const c = makeCard();
    // (a) The first link refused (no HT set): no chain is left behind, so MSE:SET runs instead of 6883.
    expect(c.sw(cmds.pso(0x9080, text('abc'), true))).toBe('6985');
    expect(c.sw(cmds.mse(CRT.HT, 4))).toBe('9000');
    expect(hex(c.ok(cmds.pso(0x9080, text('def'))))).toBe(hex(sha256(text('def'))));

    // (b) A middle link refused (a digest given as ECDSA input outgrows 32 bytes: 6700).
    const pub = ecdsa('P-256').getPublicKey(pattern(32, 0x42));
    c.ok(cmds.putKey(0x21, 33, [1], pattern(32, 0x42)));
    c.ok(cmds.mse(CRT.DST, 33, [0x21], [[TAG.INPUT_IS_DIGEST, [1]]]));
    expect(c.sw(cmds.pso(0x9e9a, new Uint8Array(20), true))).toBe('9000');
    expect(c.sw(cmds.pso(0x9e9a, new Uint8Array(20), true))).toBe('6700');
    expect(c.streams().size, 'the refused stream is freed').toBe(0);
    // The next unchained COMPUTE is a new message: the 32-byte digest alone is signed, not appended to 40 bytes.
    const digest = sha256(text('message'));
    const sig = c.ok(cmds.pso(0x9e9a, digest));
    expect(ecdsa('P-256').verify(sig, digest, pub, { hash: 'SHA-256', prehashed: true, format: 'raw' })).toBe(true);
    // ... and a command of another INS is not an interruption of it (no 6883).
    expect(c.sw(cmds.pso(0x9e9a, new Uint8Array(20), true))).toBe('9000');
    expect(c.sw(cmds.pso(0x9e9a, new Uint8Array(20), true))).toBe('6700');
    expect(c.sw(cmds.getData(0xdf, 0x03, 8))).toBe('9000');
    expect(c.streams().size).toBe(0);
  });

  it('3. a link the card OS refuses (6700 length, 6882 secure messaging) ends its chain too', () => {
    // The card OS refuses these before the applet sees them; were the chain to go on, the last link
    // would hash 'abc' + 'def', a message with a hole where the refused link was.
    const c = makeCard(SHORT_LIMITS);
    const link = (data: Uint8Array, more: boolean) => ({ ...cmds.pso(0x9080, data, more), ne: 256 });
    c.ok(cmds.mse(CRT.HT, 4));
    for (const [refused, sw] of [
      [encodeCommand(link(text('XYZ'), true), { extended: true }), '6700'], // extended APDU to a short card
      [encodeCommand({ ...link(text('XYZ'), true), cla: 0x1c }), '6882'], // chained, with secure messaging
    ] as const) {
      expect(c.sw(link(text('abc'), true))).toBe('9000');
      expect(c.raw(refused).sw).toBe(sw);
      expect(hex(c.ok(link(text('def'), false))), `after ${sw}`).toBe(hex(sha256(text('def'))));
    }
  });

  // 4. Power: "Cold reset ... and warm reset both close all logical channels and forget every
  // selection, security environment and PSO chain."
  for (const event of ['cold', 'warm', 'off'] as const) {
    it(`4. a ${event} reset destroys the PSO streams in progress on every channel; a continuation after it is refused`, () => {
      const c = makeCard();
      c.ok(cmds.putKey(0x10, 25, [1], pattern(32, 1)));
      expect(hex(c.ok(cmds.openChannel()))).toBe('01');
      c.ok(cmds.mse(CRT.HT, 4));
      c.ok(cmds.pso(0x9080, text('abc'), true));
      c.ok(cmds.select(SENV_AID, 0x01));
      c.ok(cmds.mse(CRT.DST, 25, [0x10], [], 0x01));
      c.ok(cmds.pso(0x9e9a, text('abc'), true, 0x01));
      const open = [...c.streams()];
      expect(open.length).toBe(2);
      const destroyed: unknown[] = [];
      for (const s of open) {
        const d = s.destroy.bind(s);
        s.destroy = () => (destroyed.push(s), d());
      }
      c.os.power(event);
      expect(destroyed.length, 'each stream destroyed once').toBe(2);
      expect(new Set(destroyed).size).toBe(2);
      expect(c.streams().size).toBe(0);
      // The continuation: no application on channel 0 (6D00), channel 1 closed (6881).
      expect(c.sw(cmds.pso(0x9080, text('def')))).toBe('6D00');
      expect(c.sw(cmds.pso(0x9e9a, text('def'), false, 0x01))).toBe('6881');
      // Selected and set up again, the last link is a message of its own, not the end of 'abc'.
      c.ok(cmds.select(SENV_AID));
      expect(c.sw(cmds.pso(0x9080, text('def')))).toBe('6985'); // the HT went with the reset
      c.ok(cmds.mse(CRT.HT, 4));
      expect(hex(c.ok(cmds.pso(0x9080, text('def'))))).toBe(hex(sha256(text('def'))));
    });
  }

  // 5. PUT DATA 6A89: "a slot is written once until PUT DATA 03 deletes its key ... never overwrites a
  // key someone else holds"; a refused write changes nothing.
  it('5. a refused write into an occupied slot (bad material, 6A81, 6A89) leaves the old key intact, bytes and all', () => {
    const c = makeCard();
    const key = pattern(32, 0x5a);
    c.ok(cmds.putKey(0x10, 25, [1], key));
    c.ok(cmds.generate(33, [0x20]));
    const point = publicPoint(c, 0x20);
    const hmacRec = c.store.keys.get(0x10)!;
    const ecRec = c.store.keys.get(0x20)!;
    const ecSecret = hex(ecRec.secret!);
    const msg = text('still the same key');
    const scalar = pattern(32, 0x11);
    const attempts: [string, CommandApdu, string][] = [];
    for (const ref of [0x10, 0x20]) {
      attempts.push(
        [`${ref}: HMAC, empty material`, cmds.putKey(ref, 25, [1], new Uint8Array(0)), '6A80'],
        [`${ref}: HMAC, 4097 bytes`, cmds.putKey(ref, 25, [1], new Uint8Array(4097).fill(1)), '6A80'],
        [`${ref}: HMAC, public kind`, cmds.putKey(ref, 25, [2], pattern(32, 1)), '6A80'],
        [`${ref}: no material`, cmds.putKey(ref, 25, [1], undefined), '6A80'],
        [`${ref}: ECDSA scalar out of range`, cmds.putKey(ref, 33, [1], new Uint8Array(32).fill(0xff)), '6A80'],
        [`${ref}: ECDSA point off the curve`, cmds.putKey(ref, 33, [2], Uint8Array.of(4, ...new Uint8Array(64).fill(1))), '6A80'],
        [`${ref}: unknown algorithm`, cmds.putKey(ref, 0x7777, [1], pattern(32, 1)), '6A81'],
        [`${ref}: good HMAC key`, cmds.putKey(ref, 25, [1], pattern(32, 2)), '6A89'],
        [`${ref}: good ECDSA scalar`, cmds.putKey(ref, 33, [1], scalar), '6A89'],
        [`${ref}: good ECDSA point`, cmds.putKey(ref, 33, [2], ecdsa('P-256').getPublicKey(scalar)), '6A89'],
        [`${ref}: GENERATE HMAC`, cmds.generate(25, [ref]), '6A89'],
        [`${ref}: GENERATE ECDSA`, cmds.generate(33, [ref]), '6A89'],
        [`${ref}: GENERATE unknown algorithm`, cmds.generate(0x7777, [ref]), '6A81'],
      );
    }
    for (const [what, cmd, sw] of attempts) {
      expect(c.sw(cmd), what).toBe(sw);
      // the very records, their bytes unchanged (neither replaced nor zeroized)
      expect(c.store.keys.get(0x10), what).toBe(hmacRec);
      expect(c.store.keys.get(0x20), what).toBe(ecRec);
      expect(hex(hmacRec.secret!), what).toBe(hex(key));
      expect(hex(ecRec.secret!), what).toBe(ecSecret);
    }
    // and they still work as before
    expect(hex(macWith(c, 0x10, msg))).toBe(hex(hmac('SHA-256', key, msg)));
    expect(hex(publicPoint(c, 0x20))).toBe(hex(point));
    c.ok(cmds.mse(CRT.DST, 33, [0x20]));
    expect(ecdsa('P-256').verify(c.ok(cmds.pso(0x9e9a, msg)), msg, point, { format: 'raw' })).toBe(true);
    expect(slots(c)).toEqual([0x10, 0x20]);
  });

  it('5. a write refused for memory (6A84) leaves the slot or object as it was', () => {
    const c = makeCard();
    c.ok(cmds.putObject(1, pattern(10, 1)));
    // Fill the memory so that 40 bytes remain: object 2 takes (4 + n) bytes.
    const free = () => { const m = c.ok(cmds.getData(0xdf, 0x02, 8)); return new DataView(m.buffer, m.byteOffset).getUint32(4); };
    const big = new Uint8Array(free() - 4 - 40).fill(0x33);
    for (let o = 0; o < big.length; o += 0xff00) {
      const part = big.subarray(o, o + 0xff00);
      expect(c.sw(cmds.putObject(2, part, o + 0xff00 < big.length ? 0x10 : 0))).toBe('9000');
    }
    expect(free()).toBe(40);
    // A key of 8 + 33 bytes does not fit: refused, the slot stays empty.
    expect(c.sw(cmds.putKey(0x10, 25, [1], pattern(33, 1)))).toBe('6A84');
    expect(c.sw(cmds.generate(26, [0x11]))).toBe('6A84'); // HMAC-SHA-384: 8 + 48
    expect(slots(c)).toEqual([]);
    expect(c.sw(cmds.getData(DO.KEY, 0x10))).toBe('6A88');
    expect(free()).toBe(40);
    // An object rewritten larger than fits: refused, the old content stays.
    expect(c.sw(cmds.putObject(1, pattern(51, 2)))).toBe('6A84');
    expect(hex(c.ok(cmds.getData(DO.OBJECT, 1)))).toBe(hex(pattern(10, 1)));
    // Exactly what is left fits (8 + 32 bytes); then nothing does.
    c.ok(cmds.putKey(0x10, 25, [1], pattern(32, 1)));
    expect(free()).toBe(0);
    expect(c.sw(cmds.putObject(1, pattern(11, 2)))).toBe('6A84');
    expect(hex(c.ok(cmds.getData(DO.OBJECT, 1)))).toBe(hex(pattern(10, 1)));
    expect(slots(c)).toEqual([0x10]);
    expect(NVM_CAPACITY).toBe((4 + 10) + (4 + big.length) + (8 + 32));
  });

  // 6. P2 00 and FF: PUT DATA "6A86 | P2 00 or FF"; the other commands' P1-P2 rules.
  it('6. P2 00 and FF: PUT DATA refuses them (6A86) for every P1; other commands refuse or read them as the profile says', () => {
    const c = makeCard();
    const memory = hex(c.ok(cmds.getData(0xdf, 0x02, 8)));
    for (const p2 of [0x00, 0xff]) {
      const h = p2.toString(16);
      expect(c.sw(cmds.putKey(p2, 25, [1], pattern(32, 1))), `PUT DATA 01 ${h}`).toBe('6A86');
      expect(c.sw(cmds.putObject(p2, pattern(8, 1))), `PUT DATA 02 ${h}`).toBe('6A86');
      expect(c.sw(cmds.deleteKey(p2)), `PUT DATA 03 ${h}`).toBe('6A86');
      expect(c.sw(cmds.deleteObject(p2)), `PUT DATA 04 ${h}`).toBe('6A86');
      // nothing there to read either
      expect(c.sw(cmds.getData(DO.KEY, p2)), `GET DATA 01 ${h}`).toBe('6A88');
      expect(c.sw(cmds.getData(DO.OBJECT, p2)), `GET DATA 02 ${h}`).toBe('6A88');
      // other commands: P1-P2 fixed at 00 00 (or a CRT / a PSO operation)
      expect(c.sw(cmds.mse(CRT.HT, 4, undefined, [])), 'MSE:SET HT').toBe('9000');
      expect(c.sw({ ...cmds.mse(CRT.HT, 4), p2 }), `MSE:SET 41 ${h}`).toBe('6A86');
      for (const p1 of [0x90, 0x9e, 0x86, 0x80, 0x00]) expect(c.sw({ ...cmds.pso(0x9080, text('x')), p1, p2 }), `PSO ${p1.toString(16)} ${h}`).toBe('6A86');
      expect(c.sw(cmds.challenge(0, 0xff)), 'GET CHALLENGE 00 FF').toBe('6A86');
      expect(c.sw({ cla: 0, ins: INS.INTERNAL_AUTHENTICATE, p1: 0, p2: 0xff, data: text('x'), ne: 256 }), 'INTERNAL AUTHENTICATE 00 FF').toBe('6A86');
      expect(c.sw(cmds.generate(25, [0x30], 0x80, 0xff)), 'GENERATE 80 FF').toBe('6A86');
      expect(c.sw({ ...cmds.openChannel(), p2: 0xff }), 'MANAGE CHANNEL open 00 FF').toBe('6A86');
      expect(c.sw(cmds.closeChannel(0xff)), 'MANAGE CHANNEL close 80 FF').toBe('6A86');
    }
    expect(slots(c)).toEqual([]);
    expect(hex(c.ok(cmds.getData(0xdf, 0x02, 8))), 'nothing was written').toBe(memory);
    // The neighbours 01 and FE are ids like any other.
    for (const id of [0x01, 0xfe]) {
      c.ok(cmds.putObject(id, pattern(8, id)));
      expect(hex(c.ok(cmds.getData(DO.OBJECT, id)))).toBe(hex(pattern(8, id)));
      c.ok(cmds.deleteObject(id));
    }
    // MANAGE CHANNEL close with P2 00 from a logical channel: P2 00 names the CLA's channel.
    expect(hex(c.ok(cmds.openChannel()))).toBe('01');
    c.ok(cmds.closeChannel(0x00, 0x01));
    expect(c.sw(cmds.challenge(0, 0, 0x01))).toBe('6881');
  });

  // The profile writes these `00 47 81 00` and `00 C0 00 00 Le`: other parameters are refused, as for GENERATE 80.
  it('6. GENERATE 81 (read a public key) refuses P2 FF like GENERATE 80 does (6A86)', () => {
    const c = makeCard();
    c.ok(cmds.generate(33, [0x20]));
    expect(c.sw(cmds.generate(undefined, [0x20], 0x81, 0xff))).toBe('6A86');
  });

  it('6. GET RESPONSE refuses P1-P2 other than 00 00 (6A86)', () => {
    const c = makeCard();
    c.ok(cmds.putObject(5, pattern(300, 1)));
    expect(c.send(cmds.getData(DO.OBJECT, 5, 256)).sw).toBe('612C');
    expect(c.sw(cmds.getResponse(0x2c, 0, 0, 0xff))).toBe('6A86');
  });

  // 7. "84 | 1 | key reference: slot 01-FE".
  it('7. key slots 00 and FF are outside the range: GENERATE refuses them (6A80); 01 and FE are the first and last slots', () => {
    const c = makeCard();
    for (const ref of [0x00, 0xff]) {
      expect(c.sw(cmds.generate(25, [ref])), `GENERATE HMAC ${ref}`).toBe('6A80');
      expect(c.sw(cmds.generate(33, [ref])), `GENERATE ECDSA ${ref}`).toBe('6A80');
      expect(c.sw(cmds.generate(undefined, [ref], 0x81)), `GENERATE 81 ${ref}`).toBe('6A80');
      // MSE:SET checks only that the reference is one byte; the operation finds no key there.
      c.ok(cmds.mse(CRT.DST, 25, [ref]));
      expect(c.sw(cmds.pso(0x9e9a, text('x'))), `PSO with slot ${ref}`).toBe('6A88');
    }
    expect(slots(c)).toEqual([]);
    expect(c.store.keys.size).toBe(0);
    for (const ref of [0x01, 0xfe]) {
      c.ok(cmds.generate(25, [ref]), `GENERATE ${ref}`);
      // Algorithm, kind and the slot's key stamp: 8 bytes drawn for this key.
      expect(hex(c.ok(cmds.getData(DO.KEY, ref)))).toMatch(/^800200198101018308[0-9A-F]{16}$/);
      expect(macWith(c, ref, text('x')).length).toBe(32);
    }
    c.ok(cmds.deleteKey(0xfe));
    c.ok(cmds.generate(33, [0xfe]));
    expect(publicPoint(c, 0xfe).length).toBe(65);
    // DF04: slot 1 is bit 6 of byte 0, slot FE bit 1 of byte 31.
    const map = c.ok(cmds.getData(0xdf, 0x04, 32));
    expect(hex(map)).toBe(`40${'00'.repeat(30)}02`);
    c.ok(cmds.putKey(0x02, 25, [1], pattern(16, 1)));
    c.ok(cmds.deleteKey(0x01));
    c.ok(cmds.deleteKey(0xfe));
    expect(slots(c)).toEqual([0x02]);
  });

  // 8. The key reference is one byte: MSE:SET "6A80 ... key reference not one byte"; GENERATE "6A80 missing or malformed 80/84".
  it('8. a key reference of 2 bytes (or none) is refused 6A80, never read as its first byte', () => {
    const c = makeCard();
    const k1 = pattern(32, 1);
    const k2 = pattern(32, 2);
    c.ok(cmds.putKey(0x10, 25, [1], k1));
    c.ok(cmds.putKey(0x11, 25, [1], k2));
    c.ok(cmds.generate(33, [0x20]));
    const msg = text('which key?');
    c.ok(cmds.mse(CRT.DST, 25, [0x10]));
    for (const ref of [[0x11, 0x00], [0x11, 0x11], [0x00, 0x11], []]) {
      expect(c.sw(cmds.mse(CRT.DST, 25, ref)), `MSE:SET 84 ${hex(Uint8Array.from(ref))}`).toBe('6A80');
    }
    // The refused MSE:SET set nothing: the DST still names slot 10.
    expect(hex(c.ok(cmds.pso(0x9e9a, msg)))).toBe(hex(hmac('SHA-256', k1, msg)));
    for (const ref of [[0x12, 0x00], [0x12, 0x12], []]) {
      expect(c.sw(cmds.generate(25, ref)), `GENERATE 84 ${hex(Uint8Array.from(ref))}`).toBe('6A80');
      expect(c.sw(cmds.generate(33, ref)), `GENERATE 84 ${hex(Uint8Array.from(ref))}`).toBe('6A80');
    }
    expect(c.sw(cmds.generate(undefined, [0x20, 0x00], 0x81)), 'GENERATE 81 84 2000').toBe('6A80');
    expect(c.sw(cmds.generate(undefined, [0x20, 0x20], 0x81)), 'GENERATE 81 84 2020').toBe('6A80');
    expect(slots(c)).toEqual([0x10, 0x11, 0x20]);
  });

  // 9. PUT DATA 01: "81 01 kind (01 secret, 02 public)": 02 only for ECDSA (a public point); a
  // symmetric key is secret by nature; other kinds are malformed (6A80).
  it('9. key kind: 02 (public) is refused for every symmetric algorithm, 00/03/FF and a missing kind for all; 02 imports an ECDSA point', () => {
    const c = makeCard();
    const symmetric: [number, number][] = [[25, 32], [26, 48], [27, 64], [49, 16], [18, 32], [13, 16], [24, 32], [1001, 16], [1004, 32]];
    for (const [alg, len] of symmetric) {
      expect(c.sw(cmds.putKey(0x10, alg, [2], pattern(len, alg))), `alg ${alg} kind 02`).toBe('6A80');
      for (const kind of [[0], [3], [0xff], []]) expect(c.sw(cmds.putKey(0x10, alg, kind, pattern(len, alg))), `alg ${alg} kind ${hex(Uint8Array.from(kind))}`).toBe('6A80');
      expect(c.sw(cmds.putKey(0x10, alg, undefined, pattern(len, alg))), `alg ${alg} no kind`).toBe('6A80');
    }
    const scalar = pattern(32, 0x21);
    const point = ecdsa('P-256').getPublicKey(scalar);
    for (const kind of [[0], [3], [0xff], []]) expect(c.sw(cmds.putKey(0x10, 33, kind, point)), `ECDSA kind ${hex(Uint8Array.from(kind))}`).toBe('6A80');
    // a scalar given as "public" is not a point
    expect(c.sw(cmds.putKey(0x10, 33, [2], scalar))).toBe('6A80');
    expect(slots(c)).toEqual([]);
    // What is allowed: kind 01 for symmetric keys and ECDSA scalars, 02 for ECDSA points; GET DATA tells them apart.
    c.ok(cmds.putKey(0x10, 25, [1], pattern(32, 1)));
    c.ok(cmds.putKey(0x11, 33, [1], scalar));
    c.ok(cmds.putKey(0x12, 33, [2], point));
    const kindOf = (ref: number) => hex(findTlv(decodeTlvs(c.ok(cmds.getData(DO.KEY, ref))), TAG.KEY_KIND)!);
    expect([kindOf(0x10), kindOf(0x11), kindOf(0x12)]).toEqual(['01', '01', '02']);
    expect(c.store.keys.get(0x10)!.kind).toBe('secret');
    expect(c.store.keys.get(0x12)!.kind).toBe('public');
    expect(c.store.keys.get(0x12)!.secret).toBeUndefined();
    expect(hex(publicPoint(c, 0x11))).toBe(hex(point));
    expect(hex(publicPoint(c, 0x12))).toBe(hex(point));
  });

  it('9. a kind of 2 bytes (81 02 01 00) is a malformed template (6A80)', () => {
    // The profile writes `81 01 kind`; the card reads the first byte of any length.
    const c = makeCard();
    expect(c.sw(cmds.putKey(0x10, 25, [1, 0], pattern(32, 1)))).toBe('6A80');
  });

  it('9. an empty key material (82 00) is a malformed template (6A80) for every algorithm, before the card looks the algorithm up (6A81)', () => {
    const c = makeCard();
    for (const alg of [25, 49, 24, 33]) expect(c.sw(cmds.putKey(0x10, alg, [1], new Uint8Array(0))), `alg ${alg}`).toBe('6A80');
    // An algorithm the card does not implement: refused as such with material, as malformed without.
    expect(c.sw(cmds.putKey(0x10, 0x7777, [1], pattern(32, 1)))).toBe('6A81');
    expect(c.sw(cmds.putKey(0x10, 0x7777, [1], new Uint8Array(0)))).toBe('6A80');
    expect(slots(c)).toEqual([]);
  });

  // 10. SELECT: "A prefix of at least 5 bytes selects it"; 6A82 otherwise, and a failed SELECT leaves
  // the channel's selection as it was (as on 7816-4 / Java Card cards: the current application stays selected).
  it('10. SELECT by a prefix of 5 or 6 bytes selects; a shorter (or longer, or other) AID does not, and keeps the old selection', () => {
    const c = makeCard();
    for (const aid of [SENV_AID.subarray(0, 5), SENV_AID]) {
      const fci = c.ok(cmds.select(aid), `SELECT ${hex(aid)}`);
      expect(hex(findTlv(decodeTlvs(decodeTlvs(fci)[0]!.value), TAG.AID)!)).toBe(hex(SENV_AID));
    }
    c.ok(cmds.mse(CRT.HT, 4));
    const refused = [
      new Uint8Array(0), SENV_AID.subarray(0, 1), SENV_AID.subarray(0, 4), Uint8Array.of(...SENV_AID, 0x00),
      Uint8Array.of(0xf0, 0x53, 0x45, 0x4e, 0x57), Uint8Array.of(0x53, 0x45, 0x4e, 0x56, 0x01),
    ];
    for (const aid of refused) expect(c.sw(cmds.select(aid)), `SELECT ${hex(aid)}`).toBe('6A82');
    // still selected, its security environment kept
    expect(hex(c.ok(cmds.pso(0x9080, text('abc'))))).toBe(hex(sha256(text('abc'))));
    // On a channel with nothing selected, a short AID selects nothing.
    expect(hex(c.ok(cmds.openChannel()))).toBe('01');
    expect(c.sw(cmds.select(SENV_AID.subarray(0, 4), 0x01))).toBe('6A82');
    expect(c.sw(cmds.challenge(0, 0, 0x01))).toBe('6D00');
    c.ok(cmds.select(SENV_AID.subarray(0, 5), 0x01));
    expect(c.sw(cmds.challenge(0, 0, 0x01))).toBe('9000');
  });

  // 11. MANAGE CHANNEL: "Close of channel 0 is refused" (6A86).
  it('11. MANAGE CHANNEL close of the basic channel is refused (6A86); channel 0 stays open, selected and set up', () => {
    const c = makeCard();
    c.ok(cmds.mse(CRT.HT, 4));
    expect(c.sw(cmds.closeChannel(0x00))).toBe('6A86');
    expect(hex(c.ok(cmds.pso(0x9080, text('abc'))))).toBe(hex(sha256(text('abc'))));
    // a logical channel closes; closed, it is refused like channel 0
    expect(hex(c.ok(cmds.openChannel()))).toBe('01');
    c.ok(cmds.closeChannel(0x01));
    expect(c.sw(cmds.closeChannel(0x01))).toBe('6A86');
    expect(c.sw(cmds.closeChannel(0x00))).toBe('6A86');
    expect(c.sw(cmds.challenge())).toBe('9000');
    // the freed number is given out again: channel 0 was never counted as free
    expect(hex(c.ok(cmds.openChannel()))).toBe('01');
  });
  // From a review of the profile against the card and ISO/IEC 7816-4 (thirtieth stop).
  it('12. a malformed data field (a TLV cut short, an indefinite length, a 3-byte tag) is wrong data, 6A80, not a wrong length', () => {
    const c = makeCard();
    const raw = (h: string) => c.raw(Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'))).sw;
    expect(raw('00 22 41 AA 03 80 05 00')).toBe('6A80'); // MSE: 80 says 5 bytes, has 1
    expect(raw('00 DA 01 01 05 82 05 00 00 00')).toBe('6A80'); // PUT DATA key template
    expect(raw('00 47 80 00 03 84 02 01')).toBe('6A80'); // GENERATE
    expect(raw('00 22 41 AA 02 84 80')).toBe('6A80'); // indefinite length
    expect(raw('00 22 41 AA 04 9F 81 01 00')).toBe('6A80'); // a tag of three bytes
    // Lc against the bytes that follow is still a length error.
    expect(raw('00 CA DF 03 05 01 02')).toBe('6700');
  });

  it('13. an APDU the card cannot decode (Lc says more than follows) still discards the leftover response data and breaks a chain on its channel', () => {
    const c = makeCard();
    const raw = (h: string) => c.raw(Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex')));
    expect(raw('00 CA DF 03 04').sw).toBe('6104');
    expect(raw('00 CA DF 03 05 01 02').sw).toBe('6700');
    expect(raw('00 C0 00 00 00').sw, 'nothing left to fetch').toBe('6985');
    c.ok(cmds.putObject(0x10, pattern(2, 1)));
    expect(raw('10 DA 02 10 02 01 02').sw).toBe('9000'); // first link of a PUT DATA object
    expect(raw('00 DA 02 10 05 01 02').sw).toBe('6700');
    expect(raw('00 DA 02 10 02 03 04').sw).toBe('9000'); // a whole command on its own, not a last link
    expect(hex(c.ok(cmds.getData(DO.OBJECT, 0x10)))).toBe('0304');
  });

  it('14. CLA 2X and 3X (reserved for future use, ISO/IEC 7816-4 clause 5.4.1) are 6E00, as FF; 0X, 1X and 4X-7X are served', () => {
    const c = makeCard();
    const raw = (h: string) => c.raw(Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'))).sw;
    for (const cla of ['20', '21', '2F', '30', '33', 'FF']) expect(raw(`${cla} CA DF 03 08`), cla).toBe('6E00');
    expect(raw('00 CA DF 03 08')).toBe('9000');
    expect(raw('20 C0 00 00 00'), 'nor as GET RESPONSE').toBe('6E00');
  });

  it('15. SELECT and MANAGE CHANNEL are never chained: a link of one is refused 6884 and changes nothing', () => {
    const c = makeCard();
    const raw = (h: string) => c.raw(Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'))).sw;
    expect(raw('10 A4 04 00 05 F0 53 45 4E 56')).toBe('6884');
    expect(raw('10 70 00 00 01')).toBe('6884');
    expect(hex(c.ok(cmds.openChannel())), 'no channel was opened by the refused link').toBe('01');
  });
  it('15b. a joined chain (which may carry a key to import) is zeroized once the applet answered, or refused it', () => {
    const seen: Uint8Array[] = [];
    let refuse = false;
    const applet = {
      aid: SENV_AID, select: () => new Uint8Array(0), streams: () => false, dropChain: () => undefined, power: () => undefined,
      process: (cmd: { data: Uint8Array }) => {
        seen.push(cmd.data);
        if (refuse) throw new CardStatus(0x6a80);
        return Uint8Array.of(cmd.data.length);
      },
    };
    const os = new VirtualCardOs([applet]);
    os.power('cold');
    const sw = (cmd: CommandApdu) => hex(os.apdu(encodeCommand(cmd)).subarray(-2));
    expect(sw(cmds.select(SENV_AID))).toBe('9000');
    const link = (data: Uint8Array, more: boolean): CommandApdu => ({ cla: more ? 0x10 : 0, ins: INS.PUT_DATA, p1: DO.KEY, p2: 0x10, data, ne: 256 });
    for (const [i, last] of [[0, '9000'], [1, '6A80']] as const) {
      refuse = i === 1;
      expect(sw(link(pattern(200, 7), true))).toBe('9000');
      expect(sw(link(pattern(100, 9), false)), `chain ${i}`).toBe(last);
      const joined = seen.at(-1)!;
      expect(joined.length, 'the applet saw the whole chain').toBe(300);
      expect(allZero(joined), `chain ${i}: zeroized after the applet`).toBe(true);
    }
  });
  it('15c. a chained MSE:SET (associated data longer than one short command) keeps what it set after the card OS zeroized the joined chain', () => {
    const c = makeCard(SHORT_LIMITS);
    const key = pattern(16, 3), nonce = pattern(12, 5), aad = pattern(600, 11), msg = pattern(40, 13);
    c.ok(cmds.putKey(0x10, 1001, [1], key));
    const data = cmds.mse(CRT.CT, 1001, [0x10], [[TAG.IV, nonce], [TAG.AAD, aad]]).data!;
    for (let o = 0; o < data.length; o += 255) {
      const more = o + 255 < data.length;
      expect(c.send({ cla: more ? 0x10 : 0, ins: INS.MSE, p1: 0x41, p2: CRT.CT, data: data.subarray(o, o + 255) }).sw).toBe('9000');
    }
    expect(hex(c.ok({ ...cmds.pso(PSO.ENCIPHER, msg), ne: 256 }))).toBe(hex(gcm(key, nonce, aad).encrypt(msg)));
  });
  it('16. GENERATE checks P1-P2 before its data (6A86 before 6A80); GET CHALLENGE and the deleting PUT DATA take no data field (6700)', () => {
    const c = makeCard();
    const raw = (h: string) => c.raw(Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'))).sw;
    expect(raw('00 47 99 00 00')).toBe('6A86');
    expect(raw('00 47 80 01 03 84 01 10')).toBe('6A86');
    expect(raw('00 84 00 00 01 01 08')).toBe('6700');
    c.ok(cmds.putKey(0x10, 25, [1], pattern(32, 1)));
    expect(raw('00 DA 03 10 01 00')).toBe('6700');
    expect(c.store.keys.has(0x10), 'the key is still there').toBe(true);
    c.ok(cmds.putObject(7, pattern(4, 2)));
    expect(raw('00 DA 04 07 01 00')).toBe('6700');
    expect(c.store.objects.has(7)).toBe(true);
  });
  it('17. SELECT P2 0C selects without response data; a P2 other than 00 or 0C is 6A86 and selects nothing', () => {
    const c = makeCard();
    const raw = (h: string) => c.raw(Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex')));
    const quiet = raw('00 A4 04 0C 06 F0 53 45 4E 56 01');
    expect([quiet.sw, quiet.data.length]).toEqual(['9000', 0]);
    expect(raw('00 CA DF 03 08').sw, 'selected').toBe('9000');
    c.ok(cmds.openChannel());
    expect(raw('01 A4 04 04 06 F0 53 45 4E 56 01').sw).toBe('6A86');
    expect(raw('01 CA DF 03 08').sw, 'nothing selected on channel 1').toBe('6D00');
  });

  it('18. a key deleted (or replaced) while its ECDSA signature streams: the stream signs with the key it started with, as MAC and cipher streams do', () => {
    for (const replace of [false, true]) {
      const c = makeCard();
      c.ok(cmds.generate(33, [3]));
      const point = publicPoint(c, 3);
      expect(c.ok(cmds.openChannel())[0]).toBe(1);
      c.ok(cmds.select(SENV_AID, 1));
      c.ok(cmds.mse(CRT.DST, 33, [3]));
      const msg = pattern(100, 5);
      c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, msg.subarray(0, 60), true));
      // Another channel deletes the slot meanwhile (shared mode), and perhaps writes another key there.
      c.ok({ ...cmds.deleteKey(3), cla: 1 }, 'delete');
      if (replace) c.ok({ ...cmds.generate(33, [3]), cla: 1 });
      const sig = c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, msg.subarray(60)), `last link, ${replace ? 'replaced' : 'deleted'}`);
      expect(ecdsa('P-256').verify(sig, msg, point, { format: 'raw' }), replace ? 'replaced' : 'deleted').toBe(true);
    }
  });

  it('19. an AEAD DECIPHER chain is bounded: 6A84 once its ciphertext goes beyond 2^26 + 16 bytes, not held without end', () => {
    const c = makeCard();
    const key = pattern(16, 1);
    c.ok(cmds.putKey(4, 1001, [1], key));
    const nonce = pattern(12, 2);
    c.ok(cmds.mse(CRT.CT, 1001, [4], [[TAG.IV, nonce]]));
    const link = new Uint8Array(0xff00);
    let sw = '9000';
    let sent = 0;
    while (sw === '9000' && sent < 2 ** 26 + 4 * link.length) {
      sw = c.send(cmds.pso(PSO.DECIPHER, link, true)).sw;
      sent += link.length;
    }
    expect(sw).toBe('6A84');
    expect(sent).toBeGreaterThan(2 ** 26 + 16);
    expect(sent - link.length).toBeLessThanOrEqual(2 ** 26 + 16);
    expect(c.streams().size, 'the refused link ended the stream').toBe(0);
    // A message within the bound still deciphers.
    const plain = pattern(1000, 9);
    const sealed = gcm(key, nonce).encrypt(plain);
    c.ok(cmds.mse(CRT.CT, 1001, [4], [[TAG.IV, nonce]]));
    expect(hex(c.ok(cmds.pso(PSO.DECIPHER, sealed)))).toBe(hex(plain));
  });

  it('20. GENERATE with an algorithm of another length than 2 bytes is wrong data (6A80), as the profile says', () => {
    const c = makeCard();
    const gen = (alg: number[]) => c.sw({ cla: 0, ins: INS.GENERATE_KEY_PAIR, p1: 0x80, p2: 0, ne: 256, data: Uint8Array.from([TAG.ALGORITHM, alg.length, ...alg, TAG.KEY_REF, 1, 5]) });
    expect(gen([33])).toBe('6A80');
    expect(gen([0, 0, 33])).toBe('6A80');
    expect(gen([0, 33])).toBe('9000');
  });

  it('21. MSE:SET flags C0 and C1 are one byte, 00 or 01: any other value or length is wrong data (6A80), not read by its first byte', () => {
    const c = makeCard();
    c.ok(cmds.generate(33, [3]));
    for (const [tag, value] of [[TAG.SIG_FORMAT, [2]], [TAG.SIG_FORMAT, [1, 1]], [TAG.INPUT_IS_DIGEST, [2]], [TAG.INPUT_IS_DIGEST, []], [TAG.INPUT_IS_DIGEST, [1, 0]]] as const) {
      expect(c.sw(cmds.mse(CRT.DST, 33, [3], [[tag, [...value]]])), `${tag.toString(16)} ${hex(Uint8Array.from(value))}`).toBe('6A80');
    }
    for (const v of [0, 1]) c.ok(cmds.mse(CRT.DST, 33, [3], [[TAG.SIG_FORMAT, [v]], [TAG.INPUT_IS_DIGEST, [v]]]));
  });

  it('22. GET RESPONSE is never chained either: a link of one is refused 6884 (what was left to fetch is gone), no chain is begun', () => {
    const c = makeCard();
    c.ok(cmds.putObject(5, pattern(300, 7)));
    expect(c.send(cmds.getData(DO.OBJECT, 5, 256)).sw).toBe('612C');
    expect(c.send(cmds.getResponse(0x2c, 0x10)).sw).toBe('6884');
    expect(c.send(cmds.getResponse(0x2c)).sw, 'the rest was discarded').toBe('6985');
    expect(c.send(cmds.getData(DO.SERIAL >> 8, DO.SERIAL & 0xff)).sw, 'no chain of GET RESPONSE links waits').toBe('9000');
  });

  it('23. DF02 answers available <= total even for a store holding more than the capacity (written by hand, or another build)', () => {
    const c = makeCard();
    c.store.objects.set(9, new Uint8Array(NVM_CAPACITY + 1000));
    const r = c.ok(cmds.getData(DO.MEMORY >> 8, DO.MEMORY & 0xff, 8));
    expect(hex(r)).toBe(`${NVM_CAPACITY.toString(16).padStart(8, '0')}00000000`.toUpperCase());
  });

  it('24. card limits a card cannot keep (beyond 0xFF00, whose FCI fields take 2 bytes, none, or no whole number) are refused when the card is made', () => {
    for (const limits of [{ maxCommandData: 0x10000, maxResponseData: 256 }, { maxCommandData: 255, maxResponseData: 0xffff }, { maxCommandData: 0, maxResponseData: 256 }, { maxCommandData: 255.5, maxResponseData: 256 }]) {
      expect(() => new VirtualCardOs([], { limits }), JSON.stringify(limits)).toThrow(/card limits must be whole numbers of bytes/);
    }
    expect(() => new VirtualCardOs([], { limits: SHORT_LIMITS })).not.toThrow();
  });

  it('25. a key named by its stamp (83 08): DELETE KEY takes only 83 08 and the slot\'s own stamp; MSE:SET with a stamp that is not the whole of it uses no key', () => {
    const c = makeCard();
    c.ok(cmds.putKey(0x10, 25, [1], pattern(32, 1)));
    const stamp = findTlv(decodeTlvs(c.ok(cmds.getData(DO.KEY, 0x10))), TAG.KEY_STAMP)!;
    expect(stamp.length).toBe(8);
    const del = (data: number[]) => c.sw({ ...cmds.deleteKey(0x10), data: Uint8Array.from(data) });
    // The profile's one form: tag 83, length 08. Another tag or length byte of the same size is wrong data, not read as a stamp.
    expect(del([0x84, 0x08, ...stamp])).toBe('6A80');
    expect(del([TAG.KEY_STAMP, 0x07, ...stamp])).toBe('6A80');
    expect(del([TAG.KEY_STAMP, 0x08, ...stamp.map((b, i) => (i === 7 ? b ^ 1 : b))]), 'another key\'s stamp').toBe('6A88');
    expect(c.store.keys.has(0x10), 'none of them deleted the key').toBe(true);
    // A stamp that is a prefix of the key's (or longer than it) names no key of this slot.
    for (const given of [stamp.subarray(0, 4), Uint8Array.of(...stamp, 0)]) {
      c.ok(cmds.mse(CRT.DST, 25, [0x10], [[TAG.KEY_STAMP, given]]));
      expect(c.sw(cmds.pso(PSO.COMPUTE_SIGNATURE, text('m'))), `stamp of ${given.length} bytes`).toBe('6A88');
    }
    c.ok(cmds.mse(CRT.DST, 25, [0x10], [[TAG.KEY_STAMP, stamp]]));
    expect(hex(c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, text('m'))))).toBe(hex(hmac('SHA-256', pattern(32, 1), text('m'))));
    expect(del([TAG.KEY_STAMP, 0x08, ...stamp])).toBe('9000');
    expect(c.store.keys.has(0x10)).toBe(false);
  });

  it('26. a store over its capacity (written by hand, or another build) still deletes keys and objects: only a change that adds is refused 6A84', () => {
    const c = makeCard();
    c.ok(cmds.putKey(0x10, 25, [1], pattern(32, 1)));
    c.ok(cmds.putObject(8, pattern(16, 2)));
    c.store.objects.set(9, new Uint8Array(NVM_CAPACITY + 1000));
    expect(c.sw(cmds.putObject(7, pattern(4, 3))), 'an addition').toBe('6A84');
    c.ok(cmds.deleteKey(0x10), 'key deletion');
    c.ok(cmds.deleteObject(8), 'object deletion');
    c.ok(cmds.deleteObject(9), 'deletion of the object that overfilled it');
    expect([c.store.keys.size, c.store.objects.size]).toEqual([0, 0]);
    c.ok(cmds.putObject(7, pattern(4, 3)), 'room again');
  });

  it('27. a command data field one byte beyond the card\'s limit is refused 6700 and writes nothing; one at the limit is served', () => {
    for (const limits of [{ maxCommandData: 300, maxResponseData: 256 }, undefined]) {
      const c = makeCard(limits);
      const most = limits?.maxCommandData ?? 0xff00;
      expect(c.send(cmds.putObject(7, new Uint8Array(most + 1).fill(1)), true).sw, `${most + 1} bytes`).toBe('6700');
      expect(c.store.objects.has(7)).toBe(false);
      expect(c.send(cmds.putObject(7, new Uint8Array(most).fill(1)), true).sw, `${most} bytes`).toBe('9000');
      expect(c.store.objects.get(7)?.length).toBe(most);
    }
  });

  it('28. ECDSA over a digest given as input (C0 01) takes the digest\'s length exactly: one byte beyond it is refused 6700 at that link', () => {
    const c = makeCard();
    c.ok(cmds.generate(33, [3]));
    const digest = sha256(text('message'));
    c.ok(cmds.mse(CRT.DST, 33, [3], [[TAG.INPUT_IS_DIGEST, [1]]]));
    c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, digest, true));
    expect(c.sw(cmds.pso(PSO.COMPUTE_SIGNATURE, Uint8Array.of(0), true)), 'the 33rd byte').toBe('6700');
    expect(c.streams().size, 'the refused link ended the stream').toBe(0);
    c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, digest.subarray(0, 16), true));
    const sig = c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, digest.subarray(16)));
    expect(ecdsa('P-256').verify(sig, digest, publicPoint(c, 3), { format: 'raw', prehashed: true })).toBe(true);
  });

  it('29. an ECDSA signature stream ended without its last link zeroizes its own copy of the private scalar', () => {
    for (const end of ['broken', 'reset'] as const) {
      const c = makeCard();
      c.ok(cmds.generate(33, [3]));
      const scalar = c.store.keys.get(3)!.secret!.slice();
      c.ok(cmds.mse(CRT.DST, 33, [3]));
      const spy = spyUint8Arrays();
      try {
        c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, text('part'), true));
      } finally {
        spy.stop();
      }
      const copies = spy.made.filter((a) => hex(a) === hex(scalar));
      expect(copies.length, 'the stream holds a copy').toBeGreaterThan(0);
      // Any other command breaks the chain (6883), which frees the stream.
      if (end === 'broken') expect(c.sw(cmds.select(SENV_AID))).toBe('6883');
      else c.os.power('warm');
      expect(c.streams().size).toBe(0);
      for (const a of copies) expect(allZero(a), end).toBe(true);
    }
  });

  it('30. INTERNAL AUTHENTICATE without a challenge is 6700; a VERIFY whose last link holds more than 9E <signature> is 6A80, never checked', () => {
    const c = makeCard();
    const key = pattern(32, 1);
    c.ok(cmds.putKey(0x10, 25, [1], key));
    c.ok(cmds.mse(CRT.AT, 25, [0x10]));
    expect(c.sw({ cla: 0, ins: INS.INTERNAL_AUTHENTICATE, p1: 0, p2: 0, ne: 256 })).toBe('6700');
    c.ok(cmds.mse(CRT.DST, 25, [0x10]));
    const msg = text('message');
    const mac = hmac('SHA-256', key, msg);
    c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, msg, true));
    expect(c.sw(cmds.pso(PSO.VERIFY_SIGNATURE, Uint8Array.of(TAG.SIGNATURE, mac.length, ...mac, TAG.SIGNATURE, 1, 0)))).toBe('6A80');
    c.ok(cmds.pso(PSO.COMPUTE_SIGNATURE, msg, true));
    c.ok(cmds.pso(PSO.VERIFY_SIGNATURE, Uint8Array.of(TAG.SIGNATURE, mac.length, ...mac)), 'the right MAC alone verifies');
  });

  it('31. an instruction or class the applet has not is refused at a chain\'s first link (6D00, 6E00), not buffered to the last; a chain it has is joined as before', () => {
    const c = makeCard();
    const raw = (h: string) => c.raw(Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'))).sw;
    expect(raw('10 99 00 00 02 AB CD'), 'unknown INS, first link').toBe('6D00');
    expect(raw('00 99 00 00 02 AB CD'), 'its last link: no chain was kept, so it is refused as a command of its own').toBe('6D00');
    expect(raw('90 CA DF 03 02 AB CD'), 'proprietary class, first link').toBe('6E00');
    // Nothing of them was kept: GET DATA runs at once (a kept chain would answer 6883).
    expect(raw('00 CA DF 03 08')).toBe('9000');
    // A joined chain of an instruction the applet has: 9000 for the first link, the object written by the last.
    const obj = pattern(6, 4);
    expect(raw(`10 DA 02 07 03 ${hex(obj.subarray(0, 3))}`)).toBe('9000');
    expect(c.store.objects.has(7), 'not before the last link').toBe(false);
    expect(raw(`00 DA 02 07 03 ${hex(obj.subarray(3))}`)).toBe('9000');
    expect(hex(c.store.objects.get(7)!)).toBe(hex(obj));
  });
});
