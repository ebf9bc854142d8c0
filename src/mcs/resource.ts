// A resource instance and the accumulated data of an append attribute.
import type { KeyHandle } from '../backends/backend.ts';
import type { CompiledType, StreamSink } from './schema.ts';

export class Resource {
  readonly def: CompiledType;
  readonly ri: string;
  readonly rn: string;
  readonly parent: Resource | undefined;
  readonly created: number;
  modified: number;
  /** Attribute values by long name, in internal form (bytes, numbers, ms timestamps, KeyHandle, Accumulator). */
  readonly attrs = new Map<string, unknown>();
  readonly children = new Map<string, Resource>();
  /** What the next speculative stream is opened for (e.g. the direction of the last <cipher> operation). */
  hint: string | undefined;

  constructor(def: CompiledType, ri: string, rn: string, parent: Resource | undefined, now: number) {
    this.def = def;
    this.ri = ri;
    this.rn = rn;
    this.parent = parent;
    this.created = now;
    this.modified = now;
  }

  get ty(): number {
    return this.def.type.ty;
  }

  get creator(): string {
    return this.attrs.get('creator') as string;
  }

  /** The registration <SE> this resource lives under (itself for an <SE>). */
  get registration(): Resource {
    let r: Resource = this;
    while (r.parent) r = r.parent;
    return r;
  }

  bytes(name: string): Uint8Array | undefined {
    const v = this.attrs.get(name);
    return v instanceof Uint8Array ? v : v instanceof Accumulator ? v.bytes() : undefined;
  }

  key(name = 'keyData'): KeyHandle | undefined {
    const v = this.attrs.get(name);
    return isKeyHandle(v) ? v : undefined;
  }
}

/** Stands for sensitive data the device keeps itself (backend objectStore): only its size is on the host. */
export class DeviceData {
  readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
}

export function isKeyHandle(v: unknown): v is KeyHandle {
  return typeof v === 'object' && v !== null && 'spec' in v && 'kind' in v && !(v instanceof Uint8Array);
}

/**
 * The data of an append attribute (<cipher> sensitiveData, <hash> and
 * <signature> message): the chunks as they arrived, plus a backend stream
 * fed in batches of the backend's preferred size while chunks arrive, so the
 * per-chunk cost is amortized and the operation at the end only finishes it.
 *
 * After an operation consumed the data (`consumed`), the next UPDATE starts
 * a new message instead of appending to the old one.
 */
export class Accumulator {
  #chunks: Uint8Array[] = [];
  #size = 0;
  /** Chunks not yet fed to the sink (the same arrays as in #chunks until bytes() joined them). */
  #pending: Uint8Array[] = [];
  #pendingSize = 0;
  /** False once a stream was dropped after data went into it: only a replay can follow. */
  #streamable = true;
  #sink: StreamSink | undefined;
  /** Output the sink produced so far (cipher), held until the operation completes. */
  #outputs: Uint8Array[] = [];
  /** Copies of the data outside #chunks (joined batches, chunks a join replaced but not yet fed), zeroized by clear(). */
  #copies: Uint8Array[] = [];
  consumed = false;

  get size(): number {
    return this.#size;
  }

  /** Appends a chunk the accumulator owns from now on (the caller passes a private copy). */
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#streamable) {
      this.#pending.push(chunk);
      this.#pendingSize += chunk.length;
    }
  }

  /** The whole data as one array (joined once, until the next append). */
  bytes(): Uint8Array {
    if (this.#chunks.length === 1) return this.#chunks[0]!;
    const out = join(this.#chunks, this.#size);
    for (const c of this.#chunks) {
      if (this.#pending.includes(c)) this.#copies.push(c);
      else c.fill(0);
    }
    this.#chunks = this.#size ? [out] : [];
    return out;
  }

  /** Whether pump() would feed the sink now. */
  ready(batch: number): boolean {
    return this.#streamable && this.#pendingSize >= batch;
  }

  /**
   * Feeds the pending chunks to the sink once at least `batch` bytes wait;
   * `open` is asked for a sink when there is none. A failing speculative
   * stream is dropped: the operation replays the data and reports the real
   * error then.
   */
  async pump(batch: number, open: () => Promise<StreamSink | undefined>): Promise<void> {
    if (!this.ready(batch)) return;
    try {
      if (!this.#sink) {
        this.#sink = await open();
        if (!this.#sink) return;
      }
      const batched = this.#pending.length > 1;
      const data = this.#takePending(false);
      try {
        const out = await this.#sink.update(data);
        if (out && out.length) this.#outputs.push(out);
      } finally {
        if (batched) data.fill(0);
      }
    } catch {
      this.dropStream();
    }
  }

  /**
   * Hands over the live sink if it was opened for `tag`, with the data it has
   * not seen yet and the output it produced so far; otherwise drops it, and
   * the caller starts over from bytes().
   */
  take(tag: string): { sink: StreamSink; rest: Uint8Array; outputs: Uint8Array[] } | undefined {
    const sink = this.#sink;
    if (!sink || sink.tag !== tag) {
      this.dropStream();
      return undefined;
    }
    const taken = { sink, rest: this.#takePending(true), outputs: this.#outputs };
    this.#sink = undefined;
    this.#outputs = [];
    this.#streamable = false;
    return taken;
  }

  /** Aborts the speculative stream and zeroizes its output (key or parameters changed, reboot, release). */
  dropStream(): void {
    const hadData = this.#sink !== undefined || this.#pendingSize < this.#size;
    this.#sink?.abort();
    this.#sink = undefined;
    for (const o of this.#outputs) o.fill(0);
    this.#outputs = [];
    if (hadData) {
      this.#pending = [];
      this.#pendingSize = 0;
      this.#streamable = false;
    }
  }

  /** Zeroizes the data; the accumulator is empty and can stream again. */
  clear(): void {
    this.dropStream();
    for (const c of this.#chunks) c.fill(0);
    for (const c of this.#copies) c.fill(0);
    this.#chunks = [];
    this.#copies = [];
    this.#size = 0;
    this.#pending = [];
    this.#pendingSize = 0;
    this.#streamable = true;
    this.consumed = false;
  }

  /** The pending chunks as one array; `keep`: a joined copy outlives this call, so clear() zeroizes it. */
  #takePending(keep: boolean): Uint8Array {
    const p = this.#pending;
    const out = p.length === 1 ? p[0]! : join(p, this.#pendingSize);
    if (keep && p.length !== 1) this.#copies.push(out);
    this.#pending = [];
    this.#pendingSize = 0;
    return out;
  }
}

function join(parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of parts) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
