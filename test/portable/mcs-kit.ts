// Helpers of the Mcs conformance suites: an engine per case, an originator
// session that builds request primitives, and assertions on responses. The
// backend is a parameter so the same suites run against other SEs (PC/SC).
import { McsEngine, SoftwareBackend, type McsEngineOptions, type McsResponse, type SecureEnvironmentBackend } from '../../src/index.ts';
import { AssertionError } from './harness.ts';

export type BackendFactory = () => SecureEnvironmentBackend;

export const softwareSe: BackendFactory = () => new SoftwareBackend();

export async function engineWith(backend: BackendFactory, options: Omit<McsEngineOptions, 'backends'> = {}): Promise<McsEngine> {
  return McsEngine.create({ ...options, backends: [backend()] });
}

let rqiCounter = 0;

/** An originator talking to one SE of an engine. */
export class Session {
  readonly engine: McsEngine;
  readonly fr: string;
  readonly seId: string;

  constructor(engine: McsEngine, fr: string, seId = engine.seIds[0]!) {
    this.engine = engine;
    this.fr = fr;
    this.seId = seId;
  }

  /** `<M2M-SE-ID>/a/b/...` */
  path(...segs: string[]): string {
    return [this.seId, ...segs].join('/');
  }

  send(op: 1 | 2 | 3 | 4, to: string, pc?: Record<string, unknown>, ty?: number, binary = false): Promise<McsResponse> {
    const req: Record<string, unknown> = { op, to, fr: this.fr, rqi: `r${++rqiCounter}`, rvi: '3' };
    if (ty !== undefined) req.ty = ty;
    if (pc !== undefined) req.pc = pc;
    return this.engine.send(req, { binary });
  }

  create(to: string, ty: number, pc: Record<string, unknown>) {
    return this.send(1, to, pc, ty);
  }

  retrieve(to: string) {
    return this.send(2, to);
  }

  update(to: string, pc: Record<string, unknown>) {
    return this.send(3, to, pc);
  }

  delete(to: string) {
    return this.send(4, to);
  }

  /** Registers (CREATE <SE>) with resourceName `rn`. */
  async register(rn = 'reg'): Promise<McsResponse> {
    return ok(await this.create(this.seId, 20011, { 'senv:Senv': { rn, sID: this.seId, seL: this.engine.describe(this.seId)!.description.securityLevel } }), 2001, 'register');
  }
}

/** Whether the SE can honour kExp: true; one that keeps keys on the device (a card) never exports them. */
export function exportsKeys(s: Session): boolean {
  return s.engine.describe(s.seId)!.capabilities.keyStorage !== 'device';
}

/**
 * CREATEs a resource without a key, asking for an exportable one. An SE that
 * keeps keys on the device must refuse that (5001); the resource is then
 * created without kExp, so the case goes on with a key it cannot read.
 * Returns whether generateKey will show kDt.
 */
export async function createExportable(s: Session, ty: number, root: string, content: Record<string, unknown>, what: string): Promise<boolean> {
  const exportable = exportsKeys(s);
  if (!exportable) fails(await s.create(s.seId, ty, { [root]: { ...content, kExp: true } }), 5001, `${what}: kExp on device key storage`, /kExp/);
  ok(await s.create(s.seId, ty, { [root]: exportable ? { ...content, kExp: true } : content }), 2001, what);
  return exportable;
}

/** Asserts the status code and returns the response; the message shows the m2m:dbg text. */
export function ok(r: McsResponse, rsc: number, what: string): McsResponse {
  if (r.rsc !== rsc) throw new AssertionError(`${what}: expected rsc ${rsc}, got ${r.rsc} (${JSON.stringify(r.pc?.['m2m:dbg'] ?? '')})`);
  return r;
}

/** Asserts a failure code and that the debug text matches (and is a short string). */
export function fails(r: McsResponse, rsc: number, what: string, pattern?: RegExp): void {
  ok(r, rsc, what);
  const dbg = r.pc?.['m2m:dbg'];
  if (typeof dbg !== 'string' || dbg.length === 0 || dbg.length > 200) throw new AssertionError(`${what}: m2m:dbg must be a short string, got ${JSON.stringify(dbg)}`);
  if (pattern && !pattern.test(dbg)) throw new AssertionError(`${what}: m2m:dbg '${dbg}' does not match ${pattern}`);
}

/** The body of the single root element of a response content. */
export function body(r: McsResponse, root: string): Record<string, unknown> {
  const b = r.pc?.[root];
  if (typeof b !== 'object' || b === null) throw new AssertionError(`expected content ${root}, got ${JSON.stringify(r.pc)}`);
  return b as Record<string, unknown>;
}

export function b64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function unb64(s: unknown): Uint8Array {
  if (typeof s !== 'string') throw new AssertionError(`expected base64 string, got ${typeof s}`);
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
