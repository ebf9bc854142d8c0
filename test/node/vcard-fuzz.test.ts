// Chooserom and mutated APDUs to the senv virtual card (card OS + applet, in
// process): the commands of docs/apdu-profile.md in random order, on channels
// 0 and 1, chained and not, and mutations of their bytes (bits flipped, cut
// short, bytes added, CLA, INS, P1-P2 and length fields changed). Every APDU
// gets an answer with a status word within the card's response limit, none an
// internal error (6F00 from an exception) and none a byte run of any secret
// the card holds at the time; afterwards the slot map and the memory figures
// agree with the store, and the card still computes what node:crypto computes.
// SENV_VCARD_FUZZ_SEED and SENV_VCARD_FUZZ_COUNT run other or longer campaigns.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeCommand, hex, type CommandApdu } from '../../src/apdu/apdu.ts';
import { CRT, DO, PSO, SENV_AID, TAG } from '../../src/apdu/profile.ts';
import { initSync } from '../../src/core/index.ts';
import { EXTENDED_LIMITS } from '../../src/virtual-card/card.ts';
import { chooser, holds, prng, type Chooser } from '../portable/harness.ts';
import { cmds, macWith, makeCard, pattern, slots, type Card } from './vcard-kit.ts';

initSync();

const SEED = Number(process.env.SENV_VCARD_FUZZ_SEED ?? 7816);
const COUNT = Number(process.env.SENV_VCARD_FUZZ_COUNT ?? 20_000);


/** A valid command of the profile, with random slots, algorithms, lengths and channel. */
function command(rand: Chooser, material: (n: number) => Uint8Array): CommandApdu {
  const pick = <T>(a: readonly T[]) => a[rand(a.length)]!;
  const slot = 1 + rand(6);
  const data = (most: number) => pattern(rand(most + 1), rand(256));
  const cmd: CommandApdu = pick([
    () => cmds.select(pick([SENV_AID, SENV_AID.subarray(0, 5), Uint8Array.of(0xa0, 0, 0, 0, 1)])),
    () => cmds.putKey(slot, pick([1001, 1002, 1003, 13, 24, 49, 18]), [1], material(pick([16, 32, 15]))),
    () => cmds.putKey(slot, pick([25, 26, 27]), [1], material(pick([32, 48, 1, 200]))),
    () => cmds.putKey(slot, pick([33, 34, 38]), [pick([1, 2])], material(pick([32, 48, 65, 66]))),
    () => cmds.generate(pick([1001, 25, 33, 34, 38, 49, 999]), [slot], pick([0x80, 0x81])),
    () => cmds.deleteKey(slot),
    () => cmds.putObject(slot, data(300)),
    () => cmds.deleteObject(slot),
    () => cmds.getData(DO.KEY, slot),
    () => cmds.getData(DO.OBJECT, slot, pick([256, 65536])),
    () => cmds.getData(0xdf, pick([0x01, 0x02, 0x03, 0x04])),
    () => cmds.mse(pick([CRT.CT, CRT.DST, CRT.HT, CRT.AT]), pick([1001, 1003, 1018, 13, 22, 23, 24, 25, 33, 49, 18, 4, 5, 6]), rand(2) ? [slot] : undefined,
      pick([[], [[TAG.IV, pattern(pick([12, 13, 16, 7]), 1)]], [[TAG.IV, pattern(12, 2)], [TAG.AAD, data(40)]], [[TAG.SIG_FORMAT, [rand(2)]]], [[TAG.INPUT_IS_DIGEST, [1]]]])),
    () => cmds.pso(pick([PSO.ENCIPHER, PSO.DECIPHER, PSO.HASH, PSO.COMPUTE_SIGNATURE, PSO.VERIFY_SIGNATURE]), data(600), rand(3) === 0),
    () => cmds.challenge(0, 0),
    () => cmds.getResponse(pick([0, 16, 256])),
    () => cmds.openChannel(),
    () => cmds.closeChannel(1),
  ])();
  // A quarter of the commands go to logical channel 1.
  return rand(4) === 0 ? { ...cmd, cla: cmd.cla | 0x01 } : cmd;
}

/** The encoded command, or a mutation of its bytes. */
function apdu(rand: Chooser, material: (n: number) => Uint8Array): Uint8Array {
  const cmd = command(rand, material);
  let b = encodeCommand(cmd, rand(2) ? {} : { extended: true });
  const steps = rand(3) === 0 ? 1 + rand(3) : 0;
  for (let i = 0; i < steps; i++) {
    b = b.slice();
    switch (rand(7)) {
      case 0: if (b.length) b[rand(b.length)]! ^= 1 << rand(8); break;
      case 1: b = b.subarray(0, rand(b.length + 1)); break;
      case 2: b = Uint8Array.of(...b, ...pattern(1 + rand(20), rand(256))); break;
      case 3: b[0] = [0x00, 0x01, 0x03, 0x04, 0x10, 0x13, 0x40, 0x4f, 0x60, 0x80, 0x90, 0xff][rand(12)]!; break;
      case 4: b[1] = rand(256); break;
      case 5: if (b.length > 3) { b[2] = rand(256); b[3] = rand(256); } break;
      default: if (b.length > 4) b[4] = rand(256); break;
    }
  }
  return b;
}

/**
 * The secrets the card holds now, at least 12 bytes each (a shorter run could match by chance), but
 * those a data object holds as well: a mutated key import (P1 01 made 02) writes its TLV as data,
 * which GET DATA rightly returns.
 */
function secrets(c: Card): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const k of c.store.keys.values()) {
    if (k.secret && k.secret.length >= 12 && ![...c.store.objects.values()].some((o) => holds(o, k.secret!))) out.push(k.secret.slice());
  }
  return out;
}

describe('virtual card fuzz', () => {
  it('random and mutated APDUs: always a status word within the response limit, no internal error, no secret in any answer; the store stays consistent', () => {
    const errors: string[] = [];
    const c = makeCard(EXTENDED_LIMITS, (line) => void (line.startsWith('internal error') && errors.push(line)));
    const rand = chooser(SEED);
    const material = prng(SEED + 1);
    const sws = new Map<string, number>();
    let held = secrets(c);
    for (let i = 0; i < COUNT; i++) {
      const sent = apdu(rand, material);
      const r = c.os.apdu(sent);
      const where = `APDU ${i}: ${hex(sent).slice(0, 80)}`;
      expect(r.length, where).toBeGreaterThanOrEqual(2);
      expect(r.length, where).toBeLessThanOrEqual(EXTENDED_LIMITS.maxResponseData + 2);
      const sw = hex(r.subarray(r.length - 2));
      sws.set(sw, (sws.get(sw) ?? 0) + 1);
      expect(errors, where).toEqual([]);
      // Secrets written by this very command count too (an answer must not echo an import).
      if (sw === '9000' || i % 16 === 0) held = secrets(c);
      for (const s of held) if (holds(r, s)) throw new Error(`${where}: the answer carries a secret of ${s.length} bytes`);
      if (rand(500) === 0) c.os.power(rand(2) ? 'cold' : 'warm');
    }
    // The campaign reached the commands' work, not only their refusals.
    expect(sws.get('9000') ?? 0).toBeGreaterThan(COUNT / 20);
    expect(sws.size).toBeGreaterThan(10);

    c.os.power('cold');
    expect(c.send(cmds.select(SENV_AID)).sw).toBe('9000');
    expect(slots(c)).toEqual([...c.store.keys.keys()].sort((a, b) => a - b));
    const memory = c.ok(cmds.getData(0xdf, 0x02, 8));
    const view = new DataView(memory.buffer, memory.byteOffset, 8);
    expect(view.getUint32(0) - view.getUint32(4)).toBe(c.store.used());
    // A free slot still takes a key, and the card's MAC is the HMAC node:crypto computes.
    const free = [...Array(254).keys()].map((i) => i + 1).find((s) => !c.store.keys.has(s))!;
    const key = pattern(32, 77), msg = pattern(1000, 5);
    c.ok(cmds.putKey(free, 25, [1], key), 'import');
    expect(hex(macWith(c, free, msg))).toBe(createHmac('sha256', key).update(msg).digest('hex').toUpperCase());
  }, 120_000);
});
