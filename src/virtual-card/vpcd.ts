// The card side of the vpcd socket protocol (virtualsmartcard's vpcd driver
// for pcscd). vpcd listens on TCP 35963 + slot; the card connects and then only
// answers. Every message, both ways, is a 2-byte big-endian length and a body.
// A 1-byte body from vpcd is a control byte: 0x00 power off, 0x01 power on
// (cold reset), 0x02 warm reset, 0x04 "send the ATR" (the only one answered;
// pcscd also polls it ~2 times a second as the presence check). Longer bodies
// are command APDUs, answered by exactly one response APDU.
import { Socket } from 'node:net';

export const VPCD_PORT = 0x8c7b;

/** What a card emulator must answer. */
export interface CardHandler {
  atr(): Uint8Array;
  /** 'cold': power on after off (or first), 'warm': RST while powered, 'off': power removed. */
  power(event: 'cold' | 'warm' | 'off'): void;
  /** Handles one command APDU; resolves to the response (data + SW1 SW2). */
  apdu(command: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

export interface VpcdCounters {
  cold: number;
  warm: number;
  off: number;
  apdus: number;
}

/**
 * A card in a vpcd slot. insert() connects, remove() disconnects (pcscd sees
 * the card gone at its next poll). vpcd accepts one card per slot and leaves
 * extra connections waiting in its backlog, so "inserted" means "vpcd spoke to
 * us", not "connect() succeeded".
 */
export class VpcdCard {
  readonly counters: VpcdCounters = { cold: 0, warm: 0, off: 0, apdus: 0 };
  private socket: Socket | null = null;
  private buffered: Buffer = Buffer.alloc(0);
  private chain: Promise<void> = Promise.resolve();
  private powered = false;

  /**
   * `keepAlive: false` lets the process exit while the card is inserted (a
   * benchmark that tears the stack down at exit); the default keeps it running.
   */
  constructor(private readonly handler: CardHandler, readonly opts: { host?: string | undefined; port?: number | undefined; keepAlive?: boolean | undefined } = {}) {}

  get inserted(): boolean {
    return this.socket !== null;
  }

  /** Connects to vpcd; resolves once vpcd talks to this card (it polls the ATR). */
  insert(timeoutMs = 10_000): Promise<void> {
    if (this.socket) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const s = new Socket();
      this.socket = s;
      s.setNoDelay(true);
      if (this.opts.keepAlive === false) s.unref();
      let settled = false;
      const done = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          this.detach(s);
          // A card that gave up leaves vpcd's backlog: vpcd would poll it for an ATR it never answers.
          s.destroy();
          reject(err);
        } else resolve();
      };
      const timer = setTimeout(
        () => done(new Error(`vpcd at ${this.address} did not poll the card within ${timeoutMs} ms (slot taken by another card?)`)),
        timeoutMs,
      );
      s.on('data', (chunk: Buffer) => {
        done();
        this.receive(s, chunk);
      });
      s.on('error', (e) => done(new Error(`cannot reach vpcd at ${this.address}: ${e.message}`)));
      s.on('close', () => {
        this.detach(s);
        done(new Error(`vpcd at ${this.address} closed the connection`));
      });
      try {
        s.connect(this.opts.port ?? VPCD_PORT, this.opts.host ?? '127.0.0.1');
      } catch (e) {
        // An invalid port or host throws here rather than emitting 'error'.
        done(new Error(`cannot reach vpcd at ${this.address}: ${(e as Error).message}`));
      }
    });
  }

  /** Pulls the card out: closes the connection; pending APDUs stay unanswered. */
  remove(): Promise<void> {
    const s = this.socket;
    if (!s) return Promise.resolve();
    this.detach(s);
    return new Promise((resolve) => {
      s.once('close', () => resolve());
      s.destroy();
    });
  }

  get address(): string {
    return `${this.opts.host ?? '127.0.0.1'}:${this.opts.port ?? VPCD_PORT}`;
  }

  private detach(s: Socket): void {
    if (this.socket !== s) return;
    this.socket = null;
    this.buffered = Buffer.alloc(0);
    if (this.powered) {
      this.powered = false;
      try {
        this.handler.power('off');
      } catch {
        // A card that fails at power-off is removed all the same: nothing is left to tell.
      }
    }
  }

  // vpcd writes header and body in separate send() calls and may also
  // coalesce messages, so frames are cut from a buffered stream.
  private receive(s: Socket, chunk: Buffer): void {
    if (this.socket !== s) return;
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    while (this.buffered.length >= 2) {
      const len = this.buffered.readUInt16BE(0);
      if (this.buffered.length < 2 + len) break;
      const body = new Uint8Array(this.buffered.subarray(2, 2 + len));
      this.buffered = this.buffered.subarray(2 + len);
      // Answers must leave in request order even when a handler is async. A handler that throws
      // out of power() or atr() is a card that failed: vpcd sees it removed, and the next
      // connection's messages still run.
      this.chain = this.chain.then(() => this.message(s, body)).catch(() => void s.destroy());
    }
  }

  private async message(s: Socket, body: Uint8Array): Promise<void> {
    if (body.length === 1) {
      switch (body[0]) {
        case 0x00:
          if (this.powered) this.counters.off++;
          this.powered = false;
          this.handler.power('off');
          return;
        case 0x01:
          this.counters.cold++;
          this.powered = true;
          this.handler.power('cold');
          return;
        case 0x02:
          this.counters.warm++;
          this.powered = true;
          this.handler.power('warm');
          return;
        case 0x04:
          return this.send(s, this.handler.atr());
        default:
          return; // unknown control bytes are ignored, as vicc does
      }
    }
    this.counters.apdus++;
    let response: Uint8Array;
    try {
      response = await this.handler.apdu(body);
      // More than vpcd's 16-bit frame carries: a response that cannot be sent, so no answer of the card.
      if (response.length > 0xffff) throw new RangeError('response too long for a vpcd frame');
    } catch {
      response = Uint8Array.of(0x6f, 0x00); // the emulator failed: "no precise diagnosis"
    }
    this.send(s, response);
  }

  private send(s: Socket, body: Uint8Array): void {
    if (this.socket !== s || s.destroyed) return;
    const frame = Buffer.allocUnsafe(2 + body.length);
    frame.writeUInt16BE(body.length, 0);
    frame.set(body, 2);
    s.write(frame);
  }
}
