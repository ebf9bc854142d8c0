// The senv virtual card (card OS + senv applet, in process, no pcscd) driven
// by raw APDUs, for the tests that want every status word as the card gives
// it: a fresh card, the commands of docs/apdu-profile.md, and a few reads.
import { expect } from 'vitest';
import { encodeCommand, hex, type CommandApdu } from '../../src/apdu/apdu.ts';
import { CRT, DO, INS, MSE_SET, SENV_AID, TAG } from '../../src/apdu/profile.ts';
import { decodeTlvs, findTlv, tlvs, u16 } from '../../src/apdu/tlv.ts';
import { randomBytes } from '../../src/core/index.ts';
import { SenvApplet } from '../../src/virtual-card/applet.ts';
import { EXTENDED_LIMITS, VirtualCardOs, type CardLimits } from '../../src/virtual-card/card.ts';
import { KeyStore } from '../../src/virtual-card/keystore.ts';

export interface Answer { data: Uint8Array; sw: string }
export type Tv = [number, Uint8Array | number[]];

export const text = (s: string) => new TextEncoder().encode(s);
export const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (seed + i * 37) & 0xff || 1);
export const allZero = (b: Uint8Array) => b.every((x) => x === 0);

/** A fresh card (memory-only store) after a cold reset, the senv application selected on channel 0. */
export function makeCard(limits: CardLimits = EXTENDED_LIMITS, log?: (line: string) => void) {
  const store = new KeyStore();
  const applet = new SenvApplet({ store, random: randomBytes, limits });
  const os = new VirtualCardOs([applet], { limits, ...(log ? { log } : {}) });
  os.power('cold');
  const raw = (bytes: Uint8Array): Answer => {
    const r = os.apdu(bytes);
    return { data: r.subarray(0, r.length - 2), sw: hex(r.subarray(r.length - 2)) };
  };
  const send = (cmd: CommandApdu, extended?: boolean): Answer => raw(encodeCommand(cmd, extended === undefined ? {} : { extended }));
  /** The command's data when it answers 9000; fails the test otherwise. */
  const ok = (cmd: CommandApdu, what = ''): Uint8Array => {
    const r = send(cmd);
    expect(r.sw, `${what} ${hex(encodeCommand(cmd)).slice(0, 8)}`).toBe('9000');
    return r.data;
  };
  const c = {
    store, applet, os, raw, send, ok,
    sw: (cmd: CommandApdu) => send(cmd).sw,
    streams: () => (applet as unknown as { streamsOpen: Set<{ destroy(): void }> }).streamsOpen,
  };
  expect(send(cmds.select(SENV_AID)).sw).toBe('9000');
  return c;
}
export type Card = ReturnType<typeof makeCard>;

export const cmds = {
  select: (aid: Uint8Array, cla = 0): CommandApdu => ({ cla, ins: 0xa4, p1: 0x04, p2: 0x00, data: aid, ne: 256 }),
  mse: (crt: number, alg: number, ref?: number[], extra: Tv[] = [], cla = 0): CommandApdu =>
    ({ cla, ins: INS.MSE, p1: MSE_SET, p2: crt, data: tlvs([TAG.ALGORITHM, u16(alg)], ...(ref ? [[TAG.KEY_REF, ref] as Tv] : []), ...extra) }),
  pso: (p1p2: number, data: Uint8Array, more = false, cla = 0): CommandApdu =>
    ({ cla: cla | (more ? 0x10 : 0), ins: INS.PSO, p1: p1p2 >> 8, p2: p1p2 & 0xff, data, ne: 65536 }),
  putKey: (ref: number, alg: number, kind: number[] | undefined, material: Uint8Array | undefined): CommandApdu => ({
    cla: 0, ins: INS.PUT_DATA, p1: DO.KEY, p2: ref,
    data: tlvs([TAG.ALGORITHM, u16(alg)], ...(kind ? [[TAG.KEY_KIND, kind] as Tv] : []), ...(material ? [[TAG.KEY_MATERIAL, material] as Tv] : [])),
  }),
  deleteKey: (ref: number): CommandApdu => ({ cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_KEY, p2: ref }),
  putObject: (id: number, data: Uint8Array, cla = 0): CommandApdu => ({ cla, ins: INS.PUT_DATA, p1: DO.OBJECT, p2: id, data }),
  deleteObject: (id: number): CommandApdu => ({ cla: 0, ins: INS.PUT_DATA, p1: DO.DELETE_OBJECT, p2: id }),
  generate: (alg: number | undefined, ref: number[], p1 = 0x80, p2 = 0): CommandApdu => ({
    cla: 0, ins: INS.GENERATE_KEY_PAIR, p1, p2, ne: 256,
    data: tlvs(...(alg === undefined ? [] : [[TAG.ALGORITHM, u16(alg)] as Tv]), [TAG.KEY_REF, ref]),
  }),
  getData: (p1: number, p2: number, ne = 256, cla = 0): CommandApdu => ({ cla, ins: INS.GET_DATA, p1, p2, ne }),
  getResponse: (le = 256, cla = 0, p1 = 0, p2 = 0): CommandApdu => ({ cla, ins: 0xc0, p1, p2, ne: le }),
  challenge: (p1 = 0, p2 = 0, cla = 0): CommandApdu => ({ cla, ins: INS.GET_CHALLENGE, p1, p2, ne: 8 }),
  openChannel: (): CommandApdu => ({ cla: 0, ins: INS.MANAGE_CHANNEL, p1: 0x00, p2: 0x00, ne: 1 }),
  closeChannel: (p2: number, cla = 0): CommandApdu => ({ cla, ins: INS.MANAGE_CHANNEL, p1: 0x80, p2 }),
};

/** The key slot map (GET DATA DF04) as a list of slots in use. */
export function slots(c: Card): number[] {
  const map = c.ok(cmds.getData(0xdf, 0x04, 32));
  return Array.from({ length: 256 }, (_, s) => s).filter((s) => map[s >> 3]! & (0x80 >> (s & 7)));
}

/** The MAC the card computes with the HMAC-SHA-256 key in `ref` (MSE:SET DST + PSO COMPUTE). */
export function macWith(c: Card, ref: number, msg: Uint8Array): Uint8Array {
  c.ok(cmds.mse(CRT.DST, 25, [ref]));
  return c.ok(cmds.pso(0x9e9a, msg));
}

/** The public point the card holds for the ECDSA key in `ref` (GENERATE 81). */
export function publicPoint(c: Card, ref: number): Uint8Array {
  const t = decodeTlvs(c.ok(cmds.generate(undefined, [ref], 0x81)));
  return findTlv(decodeTlvs(findTlv(t, TAG.PUBLIC_KEY_TEMPLATE)!), TAG.EC_POINT)!;
}
