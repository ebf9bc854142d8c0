// The same bad input over Mcs answers alike on the card's SE and the software SE: a benchmarking
// team runs one workload on both and compares rsc and m2m:dbg. No pcscd: the in-process card.
import { describe, expect, it } from 'vitest';
import { initSync, McsEngine, SoftwareBackend } from '../../src/index.ts';
import { SHORT_LIMITS } from '../../src/virtual-card/card.ts';
import { b64 } from '../portable/mcs-kit.ts';
import { InProcessReader } from './pcsc-helpers.ts';

initSync();

/** rsc and m2m:dbg of each step of `steps` run on an engine hosting the card's SE and a software SE, card first. */
async function onBoth(limits: typeof SHORT_LIMITS | undefined, steps: (send: (op: number, to: string, pc?: Record<string, unknown>, ty?: number) => Promise<string>) => Promise<string[]>): Promise<[string[], string[]]> {
  const reader = new InProcessReader(limits);
  const engine = await McsEngine.create({ backends: [reader.backend(), new SoftwareBackend()] });
  try {
    const out: string[][] = [];
    for (const se of engine.seIds) {
      let rqi = 0;
      const send = async (op: number, to: string, pc?: Record<string, unknown>, ty?: number): Promise<string> => {
        const r = await engine.send({ op, to: `${se}${to}`, fr: 'CAE1', rqi: String(++rqi), ...(ty ? { ty } : {}), ...(pc ? { pc } : {}) });
        return `${r.rsc} ${(r.pc as { 'm2m:dbg'?: string } | undefined)?.['m2m:dbg'] ?? ''}`.trim();
      };
      expect(await send(1, '', { 'senv:Senv': { rn: 'reg', sID: se, seL: engine.describe(se)!.description.securityLevel } }, 20011)).toMatch(/^2001/);
      out.push(await steps(send));
    }
    return out as [string[], string[]];
  } finally {
    await engine.close();
  }
}

describe('a message length the mode refuses', () => {
  it.each([['extended length', undefined], ['short APDUs, chained', SHORT_LIMITS]] as const)('answers 4102 with the software SE\'s words on the card too (%s), for a message short or long', async (_, limits) => {
    const key16 = b64(new Uint8Array(16).fill(7));
    const [card, soft] = await onBoth(limits, async (send) => {
      const got: string[] = [];
      const cipher = async (rn: string, Calg: number, params: Record<string, unknown>, msg: Uint8Array, view: string) => {
        expect(await send(1, '/reg', { 'senv:Cph': { rn, Calg, mbs: 4096, kDt: key16 } }, 20002)).toMatch(/^2001/);
        expect(await send(1, `/reg/${rn}`, { 'senv:algP': { rn: 'p', ...params } }, 20001)).toMatch(/^2001/);
        if (msg.length) expect(await send(3, `/reg/${rn}`, { 'senv:Cph': { msg: b64(msg) } })).toMatch(/^2004/);
        got.push(await send(2, `/reg/${rn}/${view}`));
      };
      const iv = b64(new Uint8Array(16).fill(1));
      const nc = b64(new Uint8Array(12).fill(2));
      for (const n of [0, 10, 15]) {
        await cipher(`gcm${n}`, 1001, { nc }, new Uint8Array(n), 'decrypt');
        await cipher(`ccm${n}`, 1003, { nc }, new Uint8Array(n), 'decrypt');
        await cipher(`ccm8${n}`, 1018, { nc }, new Uint8Array(n ? 7 : 0), 'decrypt');
      }
      for (const n of [17, 1000]) {
        await cipher(`nopad${n}`, 13, { iV: iv }, new Uint8Array(n), 'encrypt');
        await cipher(`nopadd${n}`, 13, { iV: iv }, new Uint8Array(n), 'decrypt');
        await cipher(`pkcs${n}`, 24, { iV: iv }, new Uint8Array(n), 'decrypt');
        await cipher(`m2${n}`, 23, { iV: iv }, new Uint8Array(n), 'decrypt');
      }
      await cipher('pkcs0', 24, { iV: iv }, new Uint8Array(0), 'decrypt');
      await cipher('m10', 22, { iV: iv }, new Uint8Array(0), 'decrypt');
      await cipher('m20', 23, { iV: iv }, new Uint8Array(0), 'decrypt');
      for (const n of [0, 5, 1000]) {
        expect(await send(1, '/reg', { 'senv:Sgn': { rn: `mac${n}`, Salg: 18, kDt: key16, ...(n ? { msg: b64(new Uint8Array(n)) } : {}) } }, 20012)).toMatch(/^2001/);
        got.push(await send(2, `/reg/mac${n}/calculateSignature`));
        // Verified against a MAC of the right length, which goes to the card.
        expect(await send(3, `/reg/mac${n}`, { 'senv:Sgn': { ...(n ? { msg: b64(new Uint8Array(n)) } : {}), Sgn: b64(new Uint8Array(16)) } })).toMatch(/^2004/);
        got.push(await send(2, `/reg/mac${n}/verifySignature`));
      }
      return got;
    });
    expect(card).toEqual(soft);
    expect(new Set(card)).toEqual(new Set([
      '4102 AES-GCM: input of 0 bytes is shorter than the 16-byte tag',
      '4102 AES-GCM: input of 10 bytes is shorter than the 16-byte tag',
      '4102 AES-GCM: input of 15 bytes is shorter than the 16-byte tag',
      '4102 AES-CCM: input of 0 bytes is shorter than the 16-byte tag',
      '4102 AES-CCM: input of 10 bytes is shorter than the 16-byte tag',
      '4102 AES-CCM: input of 15 bytes is shorter than the 16-byte tag',
      '4102 AES-CCM: input of 0 bytes is shorter than the 8-byte tag',
      '4102 AES-CCM: input of 7 bytes is shorter than the 8-byte tag',
      '4102 AES-CBC without padding: plaintext length must be a multiple of 16 bytes',
      '4102 AES-CBC: ciphertext length must be a multiple of 16 bytes',
      '4102 AES-CBC: ciphertext length must be a non-zero multiple of 16 bytes',
      '4102 AES CBC-MAC (no padding): data must be a non-empty multiple of 16 bytes',
    ]));
  });
});
