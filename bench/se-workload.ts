// The Mcs workload an SE is measured with beside senv's software SE in one engine: each
// operation set up on both, then one RETRIEVE of its virtual resource timed on each. The apdu
// module runs it on a PC/SC card, the backend module on a backend of the user's own, so the
// two tables compare the same operations.
import type { BackendCapabilities } from '../src/backends/backend.ts';
import type { McsEngine } from '../src/mcs/index.ts';
import { toBase64 } from '../src/mcs/codec.ts';
import { groupTitle, selects, type BenchGroup, type BenchOptions } from './harness.ts';

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);

type Send = (op: number, to: string, pc?: object, ty?: number) => Promise<{ rsc: number; pc?: unknown }>;

/** An algorithm list of the capabilities and the value an operation needs in it. */
type Needs = [keyof Pick<BackendCapabilities, 'cipherAlgorithms' | 'hashAlgorithms' | 'signatureAlgorithms'>, number];

export interface McsOp {
  name: string;
  size: number;
  /** What an SE must list among its capabilities to be asked for the operation at all. */
  needs: Needs;
  /** Creates the resource on an SE; returns the virtual resource to RETRIEVE per operation. */
  prepare(send: Send, se: string): Promise<string>;
}

/** `send` for setting a resource up: a request that did not succeed stops the run, with its own answer. */
const strictly = (send: Send): Send => async (op, to, pc, ty) => {
  const r = await send(op, to, pc, ty);
  if (r.rsc >= 3000) throw new Error(`setting up ${to} failed: rsc ${r.rsc} ${JSON.stringify((r.pc as Record<string, unknown> | undefined)?.['m2m:dbg'] ?? '')}`);
  return r;
};

export const OPS: readonly McsOp[] = [
  {
    name: 'Mcs SHA-256', size: 1024, needs: ['hashAlgorithms', 4],
    async prepare(send, se) {
      await send(1, se, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: toBase64(bytes(1024)) } }, 20004);
      return `${se}/reg/h/cHsh`;
    },
  },
  {
    name: 'Mcs HMAC-SHA-256', size: 1024, needs: ['signatureAlgorithms', 25],
    async prepare(send, se) {
      await send(1, se, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: toBase64(bytes(32)), msg: toBase64(bytes(1024)) } }, 20012);
      return `${se}/reg/m/cSgn`;
    },
  },
  {
    name: 'Mcs AES-128-GCM encrypt', size: 1024, needs: ['cipherAlgorithms', 1001],
    async prepare(send, se) {
      await send(1, se, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1 << 20, kDt: toBase64(bytes(16)) } }, 20002);
      await send(1, `${se}/reg/c`, { 'senv:algP': { rn: 'p', nc: toBase64(bytes(12)), aD: toBase64(bytes(16)) } }, 20001);
      await send(3, `${se}/reg/c`, { 'senv:Cph': { msg: toBase64(bytes(1024)) } });
      return `${se}/reg/c/encrypt`;
    },
  },
  {
    name: 'Mcs ECDSA P-256 sign', size: 0, needs: ['signatureAlgorithms', 33],
    async prepare(send, se) {
      await send(1, se, { 'senv:Sgn': { rn: 'e', Salg: 33 } }, 20012);
      await send(2, `${se}/reg/e/gnK`);
      await send(3, `${se}/reg/e`, { 'senv:Sgn': { msg: toBase64(bytes(64)) } });
      return `${se}/reg/e/cSgn`;
    },
  },
];

/** The titles of OPS' groups, which --filter matches (a module sets nothing up when it selects none). */
export const opTitles = (): string[] => OPS.map((op) => groupTitle({ algorithm: op.name, size: op.size }));

/** The SE measured: its M2M-SE-ID in the engine, its row's name, and how lines and errors name it ('the PC/SC SE'). */
export interface Subject {
  seId: string;
  impl: string;
  where: string;
}

export interface WorkloadHooks {
  /** An operation set up on both SEs and answered once by each; `retrieve` runs it on the subject, checked. */
  prepared?(op: McsOp, retrieve: () => Promise<void>): Promise<void>;
  /** An operation the subject's capabilities leave out: reported, not set up, not timed. */
  notOffered?(op: McsOp, reason: string): void;
}

/**
 * Registers with the subject and the software SE of `engine`, sets up each operation of OPS that
 * --filter selects on both, and returns a group per operation the subject offers: its row
 * (measured against the software SE's, the ratio column) and the software SE's, each timing one
 * RETRIEVE of the virtual resource.
 */
export async function workloadGroups(opts: BenchOptions, engine: McsEngine, subject: Subject, softwareId: string, hooks: WorkloadHooks = {}): Promise<BenchGroup[]> {
  let rq = 0;
  const send: Send = (op, to, pc, ty) =>
    engine.send({ op, to, fr: 'Cbench', rqi: `b${++rq}`, rvi: '3', ...(ty ? { ty } : {}), ...(pc ? { pc } : {}) });
  for (const id of [subject.seId, softwareId]) await strictly(send)(1, id, { 'senv:Senv': { rn: 'reg', sID: id, seL: engine.describe(id)!.description.securityLevel } }, 20011);
  const capabilities = engine.describe(subject.seId)!.capabilities;
  const groups: BenchGroup[] = [];
  for (const op of OPS) {
    if (!selects(opts, groupTitle({ algorithm: op.name, size: op.size }))) continue;
    const [list, value] = op.needs;
    if (!(capabilities[list] as readonly number[]).includes(value)) {
      const reason = `${value} is not among its ${list}`;
      console.log(`  ${op.name.padEnd(28)} not offered by ${subject.where} (${reason})`);
      hooks.notOffered?.(op, reason);
      continue;
    }
    const onSubject = await op.prepare(strictly(send), subject.seId);
    const inSoftware = await op.prepare(strictly(send), softwareId);
    // A failing request must not be timed as if it succeeded: every timed call checks its rsc.
    const answered = (where: string, to: string) => async () => {
      const r = await send(2, to);
      if (r.rsc !== 2000) throw new Error(`${op.name} on ${where} failed: rsc ${r.rsc} ${JSON.stringify(r.pc)}`);
    };
    const timedSubject = answered(subject.where, onSubject), timedSoftware = answered('the software SE', inSoftware);
    await timedSubject();
    await timedSoftware();
    await hooks.prepared?.(op, timedSubject);
    groups.push({
      algorithm: op.name, size: op.size,
      cases: [
        // Checked by their rsc on every call (answered), not by their bytes: some are random (keys, ECDSA).
        { impl: subject.impl, subject: true, async: true, fn: timedSubject, output: false },
        { impl: 'software SE', async: true, fn: timedSoftware, output: false },
      ],
    });
  }
  return groups;
}
