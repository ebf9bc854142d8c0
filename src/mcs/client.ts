// A typed convenience layer for callers who prefer methods to primitives.
// Every method sends the same request primitives a network client would
// (in binary mode), so it behaves exactly like Mcs; a failure throws the
// McsError of the response (its rsc and m2m:dbg).
import type { CipherAlgorithm, HashAlgorithm, RngType, SignatureAlgorithm } from '../backends/backend.ts';
import type { McsEngine } from './engine.ts';
import type { McsResponse, Operation } from './primitive.ts';
import { McsError } from './rsc.ts';
import { toBase64 } from './codec.ts';

let counter = 0;

/** An originator (AE-ID or CSE-ID) talking to one hosted SE. */
export class McsClient {
  readonly engine: McsEngine;
  readonly originator: string;
  readonly seId: string;

  constructor(engine: McsEngine, originator: string, seId = engine.seIds[0]!) {
    this.engine = engine;
    this.originator = originator;
    this.seId = seId;
  }

  /** Sends one primitive; resolves to the body of its content, or throws the response's McsError. */
  async request(op: Operation, to: string, root?: string, content?: Record<string, unknown>, ty?: number): Promise<Record<string, unknown>> {
    const req: Record<string, unknown> = { op, to, fr: this.originator, rqi: `c${++counter}` };
    if (ty !== undefined) req.ty = ty;
    if (root) req.pc = { [root]: content ?? {} };
    const r: McsResponse = await this.engine.send(req, { binary: true });
    if (r.rsc >= 4000) throw new McsError(r.rsc, String(r.pc?.['m2m:dbg'] ?? ''));
    return (root ? r.pc?.[root] : r.pc && Object.values(r.pc)[0]) as Record<string, unknown> ?? {};
  }

  /** CREATE <SE>: registers this originator (required before anything else). */
  async register(name?: string): Promise<this> {
    const level = this.engine.describe(this.seId)?.description.securityLevel;
    await this.request(1, this.seId, 'senv:Senv', { sID: this.seId, seL: level, ...(name ? { rn: name } : {}) }, 20011);
    return this;
  }

  /** DELETE <SE>: deregisters, deleting every resource created under the registration. */
  async deregister(): Promise<void> {
    await this.request(4, this.seId);
  }

  async hash(opts: { algorithm: HashAlgorithm; name?: string }): Promise<HashResource> {
    return new HashResource(this, await this.#create(20004, 'senv:Hsh', { Halg: opts.algorithm }, opts.name));
  }

  async cipher(opts: { algorithm: CipherAlgorithm; maxByteSize: number; key?: Uint8Array; exportable?: boolean; nonce?: Uint8Array; iv?: Uint8Array; aad?: Uint8Array; name?: string }): Promise<CipherResource> {
    const c = new CipherResource(this, await this.#create(20002, 'senv:Cph', { Calg: opts.algorithm, mbs: opts.maxByteSize, kDt: opts.key, kExp: opts.exportable }, opts.name));
    if (opts.nonce || opts.iv || opts.aad) await this.request(1, c.address, 'senv:algP', omit({ nc: opts.nonce, iV: opts.iv, aD: opts.aad }), 20001);
    return c;
  }

  async signature(opts: { algorithm: SignatureAlgorithm; key?: Uint8Array; publicKey?: Uint8Array; exportable?: boolean; format?: 'der' | 'raw'; prehashed?: boolean; name?: string }): Promise<SignatureResource> {
    const kInf = opts.publicKey && toBase64(opts.publicKey);
    return new SignatureResource(this, await this.#create(20012, 'senv:Sgn', { Salg: opts.algorithm, kDt: opts.key, kInf, kExp: opts.exportable, sgF: opts.format, prH: opts.prehashed }, opts.name));
  }

  async rand(opts: { rngType: RngType; name?: string }): Promise<RandResource> {
    return new RandResource(this, await this.#create(20007, 'senv:Rnd', { rgT: opts.rngType }, opts.name));
  }

  async sensitiveData(data: Uint8Array, name?: string): Promise<SensitiveDataResource> {
    return new SensitiveDataResource(this, await this.#create(20009, 'senv:Sdo', { msg: data }, name));
  }

  async #create(ty: number, root: string, content: Record<string, unknown>, name?: string): Promise<string> {
    const body = await this.request(1, this.seId, root, omit({ ...content, rn: name }), ty);
    return `${this.seId}/${body.ri as string}`;
  }
}

abstract class McsResource {
  readonly client: McsClient;
  /** Absolute address: `<M2M-SE-ID>/<resourceID>`. */
  readonly address: string;
  protected abstract readonly root: string;

  constructor(client: McsClient, address: string) {
    this.client = client;
    this.address = address;
  }

  retrieve(): Promise<Record<string, unknown>> {
    return this.client.request(2, this.address, this.root);
  }

  async delete(): Promise<void> {
    await this.client.request(4, this.address);
  }

  protected patch(content: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.client.request(3, this.address, this.root, content);
  }

  protected async run(virtual: string, attr: string): Promise<unknown> {
    return (await this.client.request(2, `${this.address}/${virtual}`, this.root))[attr];
  }
}

export class HashResource extends McsResource {
  protected readonly root = 'senv:Hsh';
  /** Appends to the message (a new message after calculate()). */
  async update(chunk: Uint8Array): Promise<this> {
    await this.patch({ msg: chunk });
    return this;
  }
  async calculate(): Promise<Uint8Array> {
    return (await this.run('calculateHash', 'Hv')) as Uint8Array;
  }
}

export class CipherResource extends McsResource {
  protected readonly root = 'senv:Cph';
  /** Appends to sensitiveData (a new message after encrypt() or decrypt()). */
  async update(chunk: Uint8Array): Promise<this> {
    await this.patch({ msg: chunk });
    return this;
  }
  async encrypt(): Promise<Uint8Array> {
    return (await this.run('encrypt', 'cD')) as Uint8Array;
  }
  async decrypt(): Promise<Uint8Array> {
    return (await this.run('decrypt', 'cD')) as Uint8Array;
  }
  /** Generates the key; returns it only when the cipher was created exportable. */
  async generateKey(): Promise<Uint8Array | undefined> {
    return (await this.run('generateKey', 'kDt')) as Uint8Array | undefined;
  }
}

export class SignatureResource extends McsResource {
  protected readonly root = 'senv:Sgn';
  async update(chunk: Uint8Array): Promise<this> {
    await this.patch({ msg: chunk });
    return this;
  }
  async sign(): Promise<Uint8Array> {
    return (await this.run('calculateSignature', 'Sgn')) as Uint8Array;
  }
  async verify(signature: Uint8Array): Promise<boolean> {
    await this.patch({ Sgn: signature });
    return (await this.run('verifySignature', 'vR')) === true;
  }
  /** Generates the key; returns keyInformation (ECDSA: base64 of the SEC1 public point). */
  async generateKey(): Promise<unknown> {
    return this.run('generateKey', 'kInf');
  }
}

export class RandResource extends McsResource {
  protected readonly root = 'senv:Rnd';
  async generate(length: number): Promise<Uint8Array> {
    await this.patch({ Dsz: length });
    return (await this.run('generateRand', 'rndD')) as Uint8Array;
  }
}

export class SensitiveDataResource extends McsResource {
  protected readonly root = 'senv:Sdo';
  async read(): Promise<Uint8Array> {
    return (await this.retrieve()).msg as Uint8Array;
  }
  async write(data: Uint8Array): Promise<void> {
    await this.patch({ msg: data });
  }
}

function omit(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

