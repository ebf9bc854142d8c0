// Typed errors of the APDU layer. A StatusWordError carries the status word
// and its ISO/IEC 7816-4 meaning; callers branch on `sw`, not on the text.
import { SenvError, errorName } from '../core/errors.ts';

/** A malformed APDU, or an exchange that broke the protocol (e.g. endless 61xx). */
export class ApduError extends SenvError {
  declare readonly code: 'ERR_APDU';
  constructor(message: string) {
    super('ERR_APDU', message);
  }
}

const MEANING: Readonly<Record<number, string>> = {
  0x6281: 'part of returned data may be corrupted', 0x6282: 'end of file or record reached before reading Ne bytes',
  0x6283: 'selected file deactivated', 0x6581: 'memory failure', 0x6700: 'wrong length',
  0x6881: 'logical channel not supported', 0x6882: 'secure messaging not supported',
  0x6883: 'last command of the chain expected', 0x6884: 'command chaining not supported',
  0x6981: 'command incompatible with file structure', 0x6982: 'security status not satisfied',
  0x6983: 'authentication method blocked', 0x6984: 'reference data not usable',
  0x6985: 'conditions of use not satisfied', 0x6986: 'command not allowed (no current EF)',
  0x6988: 'incorrect secure messaging data objects', 0x6a80: 'incorrect parameters in the command data field',
  0x6a81: 'function not supported', 0x6a82: 'file or application not found', 0x6a84: 'not enough memory space in the file',
  0x6a86: 'incorrect parameters P1-P2', 0x6a88: 'referenced data or reference data not found',
  0x6a89: 'file already exists', 0x6b00: 'wrong parameters P1-P2', 0x6d00: 'instruction code not supported or invalid',
  0x6e00: 'class not supported', 0x6f00: 'no precise diagnosis',
};

/** A status word as it is written: four hex digits, e.g. 6A80. */
export function statusWordHex(sw: number): string {
  return sw.toString(16).toUpperCase().padStart(4, '0');
}

export function statusWordMeaning(sw: number): string {
  const exact = MEANING[sw];
  if (exact) return exact;
  const sw1 = sw >> 8;
  if (sw1 === 0x61) return `${sw & 0xff || 256} more response bytes available`;
  if (sw1 === 0x6c) return `wrong Le, ${sw & 0xff || 256} bytes available`;
  if (sw1 === 0x63 && (sw & 0xf0) === 0xc0) return `verification failed, ${sw & 0x0f} tries left`;
  if (sw1 === 0x62 || sw1 === 0x63) return 'warning, non-volatile memory state may have changed';
  if (sw1 === 0x64) return 'execution error, non-volatile memory unchanged';
  if (sw1 === 0x65) return 'execution error, non-volatile memory changed';
  return 'unknown status';
}

/**
 * The command whose own answer a status word is: its INS and P1-P2, and
 * whether it was a link of a chain with more to come (CLA b5).
 */
export interface AnsweringCommand {
  readonly ins: number;
  readonly p1: number;
  readonly p2: number;
  readonly chained: boolean;
}

/** The card refused a command: `sw` is SW1 << 8 | SW2. */
export class StatusWordError extends SenvError {
  declare readonly code: 'ERR_CARD_STATUS';
  readonly sw: number;
  readonly command: string;
  readonly answering: AnsweringCommand;
  constructor(sw: number, command: string, answering: AnsweringCommand) {
    super('ERR_CARD_STATUS', `${command}: card returned ${statusWordHex(sw)} (${statusWordMeaning(sw)})`);
    this.sw = sw;
    this.command = command;
    this.answering = answering;
  }

  override get kind(): string {
    return `${this.code} ${statusWordHex(this.sw)}`;
  }

  /**
   * The status word is the result of the command `ins` (with P1-P2 `p1p2`
   * when given) as a whole: answered by its only or last link, not by a GET
   * RESPONSE that fetched its data (the command already ran) nor by a link
   * with more to come. A status word means what the profile defines for a
   * command only when that command gave it.
   */
  answers(ins: number, p1p2?: number): boolean {
    const a = this.answering;
    return a.ins === ins && !a.chained && (p1p2 === undefined || ((a.p1 << 8) | a.p2) === p1p2);
  }
}

errorName(ApduError, 'ApduError');
errorName(StatusWordError, 'StatusWordError');
