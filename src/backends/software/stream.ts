// One streaming shape for every software algorithm: a message that never
// needed an update() goes through the core's one-shot call (cheapest for the
// small operations an IN-CSE sends by the thousand); otherwise a core context
// is created on the first update and released exactly once.
import { EMPTY, wroteInto } from '../../core/bytes.ts';
import { StateError } from '../../core/errors.ts';

/** A core streaming context as the facade exposes it. */
export interface CoreStream {
  /** Output ready so far (ciphers; written to `into` when it has room), nothing for digests and MACs. */
  update(data: Uint8Array, into?: Uint8Array): Uint8Array | void;
  /** The rest of the output (ciphers may write it to `into` when it has room). */
  finish(into?: Uint8Array): Uint8Array;
  destroy(): void;
}

export class LazyStream {
  readonly #open: () => CoreStream;
  readonly #oneShot: (data: Uint8Array) => Uint8Array;
  #ctx: CoreStream | undefined;
  #done = false;

  constructor(open: () => CoreStream, oneShot: (data: Uint8Array) => Uint8Array) {
    this.#open = open;
    this.#oneShot = oneShot;
  }

  update(data: Uint8Array, into?: Uint8Array): Uint8Array | void {
    if (this.#done) throw new StateError('stream already finished');
    return (this.#ctx ??= this.#open()).update(data, into);
  }

  /**
   * The rest of the output: what the last chunk produced followed by what
   * finishing produced, in `into` when the stream wrote the first part there
   * and the second fits behind it.
   */
  finish(last?: Uint8Array, into?: Uint8Array): Uint8Array {
    if (this.#done) throw new StateError('stream already finished');
    this.#done = true;
    const ctx = this.#ctx;
    if (!ctx) return this.#oneShot(last ?? EMPTY);
    try {
      const head = last && last.length ? ctx.update(last, into) : undefined;
      if (!head || head.length === 0) return ctx.finish(into);
      let tail: Uint8Array;
      try {
        tail = ctx.finish();
      } catch (e) {
        // A message that fails at its end (bad padding) releases nothing: the head is its plaintext, in the caller's room.
        head.fill(0);
        throw e;
      }
      const n = head.length + tail.length;
      const inPlace = wroteInto(head, into) && into!.length >= n;
      const out = inPlace ? into!.subarray(0, n) : new Uint8Array(n);
      if (!inPlace) {
        out.set(head);
        head.fill(0);
      }
      out.set(tail, head.length);
      tail.fill(0);
      return out;
    } finally {
      ctx.destroy();
      this.#ctx = undefined;
    }
  }

  abort(): void {
    this.#done = true;
    this.#ctx?.destroy();
    this.#ctx = undefined;
  }
}

