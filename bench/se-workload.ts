// The Mcs workload SEs are measured with beside senv's software SE in one engine: each
// operation set up on every one, then one RETRIEVE of its virtual resource timed on each. The
// apdu module runs it on its own virtual card, the backend module on the SEs a run names (backends
// of the user's own, cards in readers), so that every table compares the same operations.
import type { BackendCapabilities } from '../src/backends/backend.ts';
import type { McsEngine } from '../src/mcs/index.ts';
import { fromBase64, toBase64 } from '../src/mcs/codec.ts';
import { groupTitle, selects, type BenchGroup, type BenchOptions } from './harness.ts';

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);

type Answer = { rsc: number; pc?: unknown };
type Send = (op: number, to: string, pc?: object, ty?: number) => Promise<Answer>;

/** The bytes a RETRIEVE of an operation answers: its one attribute beside ri, base64 in the serialized form. */
function result(answer: unknown): Uint8Array | undefined {
  for (const attrs of Object.values(((answer as Answer).pc ?? {}) as Record<string, Record<string, unknown>>)) {
    for (const [sn, v] of Object.entries(attrs)) if (sn !== 'ri' && typeof v === 'string') return fromBase64(v);
  }
  return undefined;
}

/** An algorithm list of the capabilities and the value an operation needs in it. */
type Needs = [keyof Pick<BackendCapabilities, 'cipherAlgorithms' | 'hashAlgorithms' | 'signatureAlgorithms'>, number];

export interface McsOp {
  name: string;
  size: number;
  /** What an SE must list among its capabilities to be asked for the operation at all. */
  needs: Needs;
  /**
   * Whether every SE answers the same bytes (same key, nonce and message on each): then the rows
   * are compared before timing, as a peer's are, so that an SE answering wrong bytes is not timed.
   * ECDSA signatures are random and under each SE's own key: checked by their rsc only.
   */
  sameBytes: boolean;
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
    name: 'Mcs SHA-256', size: 1024, needs: ['hashAlgorithms', 4], sameBytes: true,
    async prepare(send, se) {
      await send(1, se, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: toBase64(bytes(1024)) } }, 20004);
      return `${se}/reg/h/cHsh`;
    },
  },
  {
    name: 'Mcs HMAC-SHA-256', size: 1024, needs: ['signatureAlgorithms', 25], sameBytes: true,
    async prepare(send, se) {
      await send(1, se, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: toBase64(bytes(32)), msg: toBase64(bytes(1024)) } }, 20012);
      return `${se}/reg/m/cSgn`;
    },
  },
  {
    name: 'Mcs AES-128-GCM encrypt', size: 1024, needs: ['cipherAlgorithms', 1001], sameBytes: true,
    async prepare(send, se) {
      await send(1, se, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1 << 20, kDt: toBase64(bytes(16)) } }, 20002);
      await send(1, `${se}/reg/c`, { 'senv:algP': { rn: 'p', nc: toBase64(bytes(12)), aD: toBase64(bytes(16)) } }, 20001);
      await send(3, `${se}/reg/c`, { 'senv:Cph': { msg: toBase64(bytes(1024)) } });
      return `${se}/reg/c/encrypt`;
    },
  },
  {
    name: 'Mcs ECDSA P-256 sign', size: 0, needs: ['signatureAlgorithms', 33], sameBytes: false,
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

/** The software SE's rows' name, which no other row of the workload may take. */
export const SOFTWARE_ROW = 'software SE';

/** An SE measured: its M2M-SE-ID in the engine, its rows' name, and how lines and errors name it ('the PC/SC SE'). */
export interface Subject {
  seId: string;
  impl: string;
  where: string;
}

export interface WorkloadHooks {
  /** An operation set up on a subject and on the software SE and answered once by each; `retrieve` runs it on the subject, checked. */
  prepared?(op: McsOp, subject: Subject, retrieve: () => Promise<void>): Promise<void>;
  /** An operation a subject's capabilities leave out: reported, not set up there, not timed. */
  notOffered?(op: McsOp, subject: Subject, reason: string): void;
}

/** What an operation costs on a counter (the APDUs a card's backend sent): its mean over 20 RETRIEVEs. */
export async function perOperation(count: () => number, retrieve: () => Promise<void>): Promise<number> {
  const before = count();
  for (let i = 0; i < 20; i++) await retrieve();
  return (count() - before) / 20;
}

/**
 * Registers with each subject and the software SE of `engine`, sets up each operation of OPS that
 * --filter selects on every subject that offers it and on the software SE, and returns a group per
 * operation some subject offers: a row per such subject (each measured against the software SE's,
 * the ratio column), then the software SE's, each timing one RETRIEVE of the virtual resource.
 */
export async function workloadGroups(opts: BenchOptions, engine: McsEngine, subjects: readonly Subject[], softwareId: string, hooks: WorkloadHooks = {}): Promise<BenchGroup[]> {
  let rq = 0;
  const send: Send = (op, to, pc, ty) =>
    engine.send({ op, to, fr: 'Cbench', rqi: `b${++rq}`, rvi: '3', ...(ty ? { ty } : {}), ...(pc ? { pc } : {}) });
  for (const id of [...subjects.map((s) => s.seId), softwareId]) await strictly(send)(1, id, { 'senv:Senv': { rn: 'reg', sID: id, seL: engine.describe(id)!.description.securityLevel } }, 20011);
  const groups: BenchGroup[] = [];
  for (const op of OPS) {
    if (!selects(opts, groupTitle({ algorithm: op.name, size: op.size }))) continue;
    const [list, value] = op.needs;
    const offering = subjects.filter((s) => {
      if ((engine.describe(s.seId)!.capabilities[list] as readonly number[]).includes(value)) return true;
      const reason = `${value} is not among its ${list}`;
      console.log(`  ${op.name.padEnd(28)} not offered by ${s.where} (${reason})`);
      hooks.notOffered?.(op, s, reason);
      return false;
    });
    if (offering.length === 0) continue;
    // A failing request must not be timed as if it succeeded: every timed call checks its rsc.
    const answered = (where: string, to: string) => async () => {
      const r = await send(2, to);
      if (r.rsc !== 2000) throw new Error(`${op.name} on ${where} failed: rsc ${r.rsc} ${JSON.stringify(r.pc)}`);
      return r;
    };
    const timed: (() => Promise<Answer>)[] = [];
    for (const s of offering) timed.push(answered(s.where, await op.prepare(strictly(send), s.seId)));
    const timedSoftware = answered('the software SE', await op.prepare(strictly(send), softwareId));
    for (const t of timed) await t();
    await timedSoftware();
    for (const [i, s] of offering.entries()) await hooks.prepared?.(op, s, async () => void (await timed[i]!()));
    const output = op.sameBytes ? result : (false as const);
    groups.push({
      algorithm: op.name, size: op.size,
      cases: [
        // Checked by their rsc on every call (answered), and by their bytes before timing where every SE computes the same.
        ...offering.map((s, i) => ({ impl: s.impl, subject: true, async: true, fn: timed[i]!, output })),
        { impl: SOFTWARE_ROW, async: true, fn: timedSoftware, output },
      ],
    });
  }
  return groups;
}
