// Message streams over PSO command chaining, batched to the card's limit:
// chunks of any size are coalesced into links of exactly the largest command
// data the card accepts, so a message of n bytes costs ceil(n / max) PSO
// APDUs (at least one) plus a constant (MSE:SET when the environment changed,
// MANAGE CHANNEL + SELECT the first time a stream needs a channel of its own).
import { INS } from '../../apdu/profile.ts';
import { ApduError, StatusWordError } from '../../apdu/errors.ts';
import { joinParts, type ResponseApdu } from '../../apdu/apdu.ts';
import { StateError } from '../../core/errors.ts';
import { EMPTY, secretBytes, secretCopyArg } from '../../core/bytes.ts';
import { cardLost, unanswered, type AppletChannel, type CardSession } from './session.ts';

export interface LinkStreamOptions {
  /** P1-P2 of the PSO the message links use. */
  pso: number;
  /** Sets the security environment on the channel before the first link. */
  setup(ch: AppletChannel): Promise<void>;
  /** Chained links answer with output (ENCIPHER/DECIPHER): ask for it in the same APDU. */
  output?: boolean;
  /**
   * The most output a link may bring back once `received` bytes of the
   * message were given (`last`: the last link): a message may be larger than
   * the transport's cap, and its output with it (CCM's whole ciphertext comes
   * with the last link).
   */
  most?(received: number, last: boolean): number;
  /**
   * The error for the stream's first PSO command refused with 6A88, where the card looks the key up:
   * the key the environment names is no longer in its slot (deleted, or another written there since:
   * the stamp tells). Keyed streams only; a later command's 6A88 stays the card's fault.
   */
  keyGone?(): Error;
}


export class LinkStream {
  private parts: Uint8Array[] = [];
  private buffered = 0;
  private given = 0;
  private ch: AppletChannel | undefined;
  private epoch = 0;
  /** No more update() or end() calls are taken. */
  private done = false;
  /** abort() was called: nothing more is sent, and an end() still running fails. */
  private aborted = false;
  /** end()'s run owns the parts and the channel until it settles (abort() leaves them to it). */
  private ending = false;
  /** PSO commands sent so far (the first is where the card looks the key up). */
  private psoSent = 0;

  constructor(private readonly session: CardSession, private readonly max: number, private readonly opts: LinkStreamOptions) {}

  /** Message bytes taken so far (what the card's output is checked against). */
  get received(): number {
    return this.given;
  }

  /**
   * Buffers; sends full links (chained) once more than one link's worth is
   * waiting. Resolves to the output those links produced (ciphers), if any.
   */
  async update(data: Uint8Array): Promise<Uint8Array> {
    if (this.done) throw new StateError('stream already finished');
    // A copy through the typed-array slots: a Buffer's slice() would be the caller's memory, which take() zeroizes.
    const copy = secretCopyArg(data, 'data');
    this.given += copy.length;
    if (copy.length === 0) return EMPTY;
    this.parts.push(copy);
    this.buffered += copy.length;
    if (this.buffered <= this.max) return EMPTY;
    return this.session.run(async () => {
      // Aborted while this waited for its turn: nothing is sent.
      if (this.aborted) return EMPTY;
      try {
        return await this.sendFull();
      } catch (e) {
        // The stream ends here, so no final() can go on with part of the message missing (under the
        // same key and nonce), and its chain is ended on its channel as an abort's is, so the card
        // keeps no PSO context; unless the card was lost, which took every channel with it (ending
        // the chain would only open a new connection).
        this.done = true;
        this.aborted = true;
        this.release(!cardLost(e));
        throw e;
      }
    });
  }

  /** update()'s turn: takes a channel if it has none, then sends every full link but the last. */
  private async sendFull(): Promise<Uint8Array> {
    if (!this.ch) {
      const ch = await this.session.takeChannel();
      if (!ch) return EMPTY; // every channel is held by another stream: keep buffering, finish on channel 0
      // Aborted while the channel was being opened: abort() could not see it, so it goes back unused.
      if (this.aborted) {
        this.session.returnChannel(ch, this.session.epoch);
        return EMPTY;
      }
      this.ch = ch;
      this.epoch = this.session.epoch;
      await this.opts.setup(ch);
      // Aborted during the setup: abort() gave the channel back.
      if (this.aborted) return EMPTY;
    }
    this.checkEpoch();
    const ch = this.ch!;
    // Keep at least one byte back: the last link must be sent unchained by end().
    const out: Uint8Array[] = [];
    try {
      while (!this.aborted && this.buffered > this.max) out.push(await this.sendNext(this.max, (d) => this.link(ch, d, true)));
    } catch (e) {
      for (const o of out) o.fill(0);
      throw e;
    }
    return joinParts(out, true);
  }

  /**
   * Sends what is left and the last command: `last` builds it from the
   * remaining message bytes (the PSO's own last link, or a different final
   * command such as VERIFY after the message went in chained links).
   */
  /**
   * `accept` checks the output (and may turn it into the result) within the turn: an answer it
   * refuses cannot be the card's to this message, so the chain is ended on the card as after a
   * command without an answer (a clean answer to the last link closed it; a bogus one may not have).
   */
  async end<T = Uint8Array>(last: (ch: AppletChannel, rest: Uint8Array) => Promise<ResponseApdu>, accept?: (out: Uint8Array) => T): Promise<T> {
    if (this.done) throw new StateError('stream already finished');
    this.done = true;
    let started = false;
    return this.session.run(async () => {
      started = true;
      this.ending = true;
      const ch = this.ch ?? this.session.channel0;
      const out: Uint8Array[] = [];
      let sent = false;
      let refused = false;
      try {
        // Aborted before its turn: nothing is sent.
        if (this.aborted) throw new StateError('stream aborted');
        if (this.ch) this.checkEpoch();
        else await this.opts.setup(ch);
        // Once sending, the message is sent to its end even if the stream is aborted meanwhile: a
        // chain cut short would stay open on the card (on channel 0, which no stream owns, the next
        // command there would continue it), and the last command or a refused link closes it.
        sent = true;
        while (this.buffered > this.max) out.push(await this.sendNext(this.max, (d) => this.link(ch, d, true)));
        out.push(await this.sendNext(this.buffered, (rest) => last(ch, rest)));
        // An abort that came meanwhile still decides: the result goes to no one.
        if (this.aborted) throw new StateError('stream aborted');
        const result = joinParts(out, true);
        if (!accept) return result as T;
        try {
          return accept(result);
        } catch (e) {
          refused = true;
          throw e;
        }
      } catch (e) {
        // Output of a message that did not end, or was aborted (plaintext, for a decryption), is released to no one.
        for (const o of out) o.fill(0);
        // A command that got no answer (a timeout) may have left the chain open: it is ended now, in
        // this turn, before any call queued meanwhile meets it (on channel 0 too, which no stream owns);
        // a channel that could not be cleaned was closed and is not pooled. After a card's answer the
        // card closed the chain; on channel 0 the next user then sends MSE:SET again.
        if (sent && (unanswered(e) || refused)) {
          if (!(await this.session.endChainNow(ch))) this.ch = undefined;
        } else if (!this.ch) ch.forgetEnvironment();
        throw e;
      } finally {
        this.ending = false;
        this.release();
      }
    }).catch((e: unknown) => {
      // The session failed before this turn began (closed, reconnect refused): nothing else will release it.
      if (!started) this.release(true);
      throw e;
    });
  }

  /** Sends the rest of the message chained, then `final` (e.g. VERIFY with the signature only). */
  async endWith(final: (ch: AppletChannel) => Promise<ResponseApdu>): Promise<Uint8Array> {
    return this.end(async (ch, rest) => {
      if (rest.length) await this.link(ch, rest, true);
      return this.pso(() => final(ch));
    });
  }

  /** The PSO's own last link with the remaining message; `accept` as for end(). */
  finish<T = Uint8Array>(accept?: (out: Uint8Array) => T): Promise<T> {
    return this.end((ch, rest) => this.link(ch, rest, false), accept);
  }

  abort(): void {
    this.done = true;
    this.aborted = true;
    if (!this.ending) this.release(true);
  }

  /**
   * Every stream carries an Mcs message declared secret (sensitiveData, or
   * the message of <hash> and <signature>): APDU logs show lengths only.
   */
  private link(ch: AppletChannel, data: Uint8Array, chained: boolean): Promise<ResponseApdu> {
    const { pso } = this.opts;
    return this.pso(() => ch.transmit({
      cla: chained ? 0x10 : 0x00, ins: INS.PSO, p1: pso >> 8, p2: pso & 0xff, data,
      ne: chained && !this.opts.output ? 0 : 65536, most: this.opts.most?.(this.given, !chained), secret: true,
    }));
  }

  /** Sends one PSO command of the stream: keyGone's error for the first's 6A88. */
  private async pso(send: () => Promise<ResponseApdu>): Promise<ResponseApdu> {
    const first = this.psoSent++ === 0;
    try {
      return await send();
    } catch (e) {
      throw first && this.opts.keyGone && e instanceof StatusWordError && e.answering.ins === INS.PSO && e.sw === 0x6a88 ? this.opts.keyGone() : e;
    }
  }

  /** Sends the next `n` bytes of the message with `send`; their copy is zeroized once sent, as the buffered parts are in release(). */
  private async sendNext(n: number, send: (data: Uint8Array) => Promise<ResponseApdu>): Promise<Uint8Array> {
    const data = this.take(n);
    try {
      return (await send(data)).data;
    } finally {
      data.fill(0);
    }
  }

  private take(n: number): Uint8Array {
    const out = secretBytes(n);
    let o = 0;
    while (o < n) {
      const p = this.parts[0]!;
      const k = Math.min(p.length, n - o);
      out.set(p.subarray(0, k), o);
      // Moved, not copied: release() zeroizes only the parts still held.
      p.fill(0, 0, k);
      o += k;
      if (k === p.length) this.parts.shift();
      else this.parts[0] = p.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  private checkEpoch(): void {
    // A failure of the card, not a request the caller may not make (StateError is 4005 over Mcs).
    if (this.epoch !== this.session.epoch) throw new ApduError('the card was reset or removed during this operation');
  }

  // A channel goes back to the pool with its environment forgotten. One an
  // aborted stream held still has its chain open on the card, which keeps the
  // PSO context (the key schedule with it) until a command ends the chain:
  // the session ends it at once rather than leaving that to the channel's next user.
  private release(aborted = false): void {
    for (const p of this.parts) p.fill(0);
    this.parts = [];
    this.buffered = 0;
    const ch = this.ch;
    this.ch = undefined;
    if (!ch) return;
    ch.forgetEnvironment();
    if (aborted) this.session.endChain(ch, this.epoch);
    else this.session.returnChannel(ch, this.epoch);
  }
}
