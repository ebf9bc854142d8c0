// The accumulated data of an append attribute, with the backend stream fed while it arrives.
import { EMPTY, secretBytes, wroteInto } from '../core/bytes.ts';
import type { StreamSink } from './schema.ts';
import { checked, zeroize } from './handed.ts';

/**
 * A buffer up to this size is kept for the next message; a larger one only for a message that
 * follows one that filled a quarter of it (a series of large messages allocates nothing), and
 * never once the data is discarded: the memory quota counts the message, not the buffer.
 */
const KEEP = 64 * 1024;

/**
 * The data of an append attribute (<cipher> sensitiveData, <hash> and
 * <signature> message) in one buffer that chunks are copied into as they
 * arrive, plus a backend stream fed in batches of the backend's preferred
 * size while they do, so the per-chunk cost is amortized and the operation at
 * the end only finishes it. The buffer grows by doubling and is reused for
 * the next message: a small UPDATE allocates nothing (allocating a typed
 * array of a few KiB costs more than the rest of the request).
 *
 * After an operation consumed the data (`consumed`), the next UPDATE starts
 * a new message instead of appending to the old one.
 */
export class Accumulator {
  #buf: Uint8Array = EMPTY;
  #size = 0;
  /** Bytes fed to the sink; the rest waits for the next batch. */
  #fed = 0;
  /** False once a stream was dropped after data went into it: only a replay can follow. */
  #streamable = true;
  /**
   * The resource had no stream to give (a <cipher> without its key or nonce yet): not asked again
   * at every UPDATE until a change that drops streams (new parameters, a generated key) may give one.
   */
  #declined = false;
  #sink: StreamSink | undefined;
  /**
   * Output the sink produced so far (cipher), held until the operation
   * completes: written in place by the sink where it can (see room()), in
   * one buffer kept from message to message like the data's.
   */
  #out: Uint8Array = EMPTY;
  #outLen = 0;
  consumed = false;

  get size(): number {
    return this.#size;
  }

  /**
   * Copies a chunk in, into `space` (see spaceFor); the caller keeps (and
   * zeroizes, if it is secret) its array.
   */
  // `space` typed, not inferred: TypeScript 5.7+ would declare the inferred type as the generic
  // Uint8Array<ArrayBufferLike>, which the root's declarations must not name (README: TS 5.4 reads them).
  append(chunk: Uint8Array, space: Uint8Array = this.spaceFor(chunk, false)): void {
    if (space !== this.#buf) {
      space.set(this.#buf.subarray(0, this.#size));
      this.#buf.fill(0, 0, this.#size);
      this.#buf = space;
    }
    this.#buf.set(chunk, this.#size);
    this.#size += chunk.length;
  }

  /**
   * The buffer that taking `chunk` puts it in (after the message held when
   * it starts a new one, `restart`): this one when it has room, else a new
   * one that grows by doubling. The one step of taking a chunk that
   * allocates, so that the engine takes it before the store's write: a chunk
   * that is durable can always be applied.
   */
  spaceFor(chunk: Uint8Array | null | undefined, restart = this.consumed): Uint8Array {
    if (!chunk) return this.#buf;
    const end = (restart ? 0 : this.#size) + chunk.length;
    const room = restart && this.#oversized(this.#buf, this.#size) ? 0 : this.#buf.length;
    // No room (a buffer clear() lets go): even an empty chunk must not bring that one back.
    // Outside the JS heap (secretBytes): a small array there is moved by a garbage collection, which leaves the old bytes behind.
    if (room === 0) return end === 0 ? EMPTY : secretBytes(end);
    return end <= room ? this.#buf : secretBytes(Math.max(end, 2 * room));
  }

  /** Whether `buf` is too large to keep for `n` bytes (KEEP). */
  #oversized(buf: Uint8Array, n: number): boolean {
    return buf.length > KEEP && n < buf.length / 4;
  }

  /**
   * What an UPDATE's chunk (null: discard the data held) and an operation
   * that ends the message do to the data, by the append rule of clause
   * 7.5.1.1.3 as senv reads it: a chunk after a consumed message starts a
   * new one. The one place that rule lives (engine, store replay, the
   * prospective state a store writes).
   */
  receive(chunk: Uint8Array | null | undefined, consumed: boolean, space: Uint8Array = this.spaceFor(chunk)): void {
    if (chunk !== undefined && (this.consumed || chunk === null)) this.clear(chunk !== null);
    if (chunk) this.append(chunk, space);
    if (consumed) this.consumed = true;
  }

  /** A copy of the data and whether it was consumed, without the stream. */
  copy(): Accumulator {
    const c = new Accumulator();
    c.append(this.bytes());
    c.consumed = this.consumed;
    return c;
  }

  /**
   * The data marked consumed, in this one's buffer (not copied: a store reads a large message at
   * most once). Only read, and only while this one is neither appended to nor cleared.
   */
  consumedView(): Accumulator {
    const v = new Accumulator();
    v.#buf = this.#buf;
    v.#size = this.#size;
    v.consumed = true;
    return v;
  }

  /** The whole data: a view (or the buffer itself when full), valid until the next append or clear. */
  bytes(): Uint8Array {
    return this.#size === this.#buf.length ? this.#buf : this.#buf.subarray(0, this.#size);
  }

  /** Whether pump() would feed the sink now. */
  ready(batch: number): boolean {
    return this.#streamable && !this.#declined && this.#size - this.#fed >= batch;
  }

  /**
   * Feeds the data not fed yet to the sink once at least `batch` bytes wait;
   * `open` is asked for a sink when there is none. A failing speculative
   * stream is dropped: the operation replays the data and reports the real
   * error then.
   */
  async pump(batch: number, open: () => Promise<StreamSink | undefined>): Promise<void> {
    if (!this.ready(batch)) return;
    try {
      if (!this.#sink) {
        this.#sink = await open();
        if (!this.#sink) {
          this.#declined = true;
          return;
        }
      }
      const data = this.#buf.subarray(this.#fed, this.#size);
      this.#fed = this.#size;
      const room = this.#sink.output ? this.room(data.length + 32) : EMPTY;
      const out = await this.#sink.update(data, room);
      if (out) this.keep(out, room);
    } catch {
      this.dropStream();
    }
  }

  /** Room for `n` more bytes of output behind what the stream produced so far; valid until the next call. */
  room(n: number): Uint8Array {
    const end = this.#outLen + n;
    if (end > this.#out.length) {
      const out = secretBytes(Math.max(end, 2 * this.#out.length));
      out.set(this.#out.subarray(0, this.#outLen));
      this.#out.fill(0, 0, this.#outLen);
      this.#out = out;
    }
    return this.#out.subarray(this.#outLen);
  }

  /**
   * Takes output the sink returned for `room`: written there already, or copied in (the sink's array
   * zeroized). Checked first (handed.ts): all output of a message is at most its data and 32 bytes
   * (a padding block, a tag), however the stream spread it (CCM gives it all at the end).
   */
  keep(out: Uint8Array, room: Uint8Array): void {
    checked(out, 'cipher output', 0, this.#size + 32 - this.#outLen);
    if (out.length === 0) return;
    if (!wroteInto(out, room)) {
      this.room(out.length).set(out);
      zeroize(out);
    }
    this.#outLen += out.length;
  }

  /** All output of the message so far: a view, valid until the next message (the change that applies it copies it). */
  output(): Uint8Array {
    return this.#out.subarray(0, this.#outLen);
  }

  /** Whether a live sink was opened for `tag` (take() would hand it over). */
  streams(tag: string): boolean {
    return this.#sink?.tag === tag;
  }

  /**
   * Hands over the live sink if it was opened for `tag`, with the data it has
   * not seen yet; the output it produced so far stays in output(), where the
   * operation adds the rest (room(), keep()). Otherwise drops the stream, and
   * the caller starts over from bytes().
   */
  take(tag: string): { sink: StreamSink; rest: Uint8Array } | undefined {
    const sink = this.#sink;
    if (!sink || sink.tag !== tag) {
      this.dropStream();
      return undefined;
    }
    const taken = { sink, rest: this.#buf.subarray(this.#fed, this.#size) };
    this.#fed = this.#size;
    this.#sink = undefined;
    this.#streamable = false;
    return taken;
  }

  /** Aborts the speculative stream and zeroizes its output (key or parameters changed, reboot, release, failed operation). */
  dropStream(): void {
    this.#declined = false;
    this.#out.fill(0, 0, this.#outLen);
    this.#outLen = 0;
    if (this.#sink === undefined && this.#fed === 0) return;
    const sink = this.#sink;
    this.#sink = undefined;
    this.#streamable = false;
    // abort() must not throw (backend.ts); one that does must not stop a removal or a close half way.
    try {
      sink?.abort();
    } catch {
      // the stream is the backend's to clean up
    }
  }

  /**
   * Zeroizes the data; the accumulator is empty and can stream again. Its buffers beyond KEEP go,
   * unless a new message follows (`next`) one that filled a quarter of them.
   */
  clear(next = false): void {
    this.dropStream();
    this.#buf.fill(0, 0, this.#size);
    const held = next ? this.#size : 0;
    if (this.#oversized(this.#buf, held)) this.#buf = EMPTY;
    if (this.#oversized(this.#out, held)) this.#out = EMPTY;
    this.#size = 0;
    this.#fed = 0;
    this.#streamable = true;
    this.consumed = false;
  }
}
