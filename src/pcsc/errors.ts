// Typed errors of the PC/SC bridge: every failure carries the SCARD code and
// its name so that callers branch on `scardName`, never on message text.
import { SenvError, errorName } from '../core/errors.ts';

/** SCARD_* return codes of pcsc-lite (pcsclite.h), by value. */
export const SCARD_CODES: Readonly<Record<number, string>> = {
  0x80100001: 'SCARD_F_INTERNAL_ERROR', 0x80100002: 'SCARD_E_CANCELLED', 0x80100003: 'SCARD_E_INVALID_HANDLE',
  0x80100004: 'SCARD_E_INVALID_PARAMETER', 0x80100005: 'SCARD_E_INVALID_TARGET', 0x80100006: 'SCARD_E_NO_MEMORY',
  0x80100007: 'SCARD_F_WAITED_TOO_LONG', 0x80100008: 'SCARD_E_INSUFFICIENT_BUFFER', 0x80100009: 'SCARD_E_UNKNOWN_READER',
  0x8010000a: 'SCARD_E_TIMEOUT', 0x8010000b: 'SCARD_E_SHARING_VIOLATION', 0x8010000c: 'SCARD_E_NO_SMARTCARD',
  0x8010000d: 'SCARD_E_UNKNOWN_CARD', 0x8010000e: 'SCARD_E_CANT_DISPOSE', 0x8010000f: 'SCARD_E_PROTO_MISMATCH',
  0x80100010: 'SCARD_E_NOT_READY', 0x80100011: 'SCARD_E_INVALID_VALUE', 0x80100012: 'SCARD_E_SYSTEM_CANCELLED',
  0x80100013: 'SCARD_F_COMM_ERROR', 0x80100014: 'SCARD_F_UNKNOWN_ERROR', 0x80100015: 'SCARD_E_INVALID_ATR',
  0x80100016: 'SCARD_E_NOT_TRANSACTED', 0x80100017: 'SCARD_E_READER_UNAVAILABLE', 0x80100018: 'SCARD_P_SHUTDOWN',
  0x80100019: 'SCARD_E_PCI_TOO_SMALL', 0x8010001a: 'SCARD_E_READER_UNSUPPORTED', 0x8010001b: 'SCARD_E_DUPLICATE_READER',
  0x8010001c: 'SCARD_E_CARD_UNSUPPORTED', 0x8010001d: 'SCARD_E_NO_SERVICE', 0x8010001e: 'SCARD_E_SERVICE_STOPPED',
  // pcsc-lite returns 0x8010001F only as SCARD_E_UNSUPPORTED_FEATURE ("SCARD_E_UNEXPECTED is never
  // returned by pcsc-lite", winscard_clnt.c); 0x80100022 is the Windows value of that name.
  0x8010001f: 'SCARD_E_UNSUPPORTED_FEATURE', 0x80100020: 'SCARD_E_ICC_INSTALLATION', 0x80100021: 'SCARD_E_ICC_CREATEORDER',
  0x80100022: 'SCARD_E_UNSUPPORTED_FEATURE', 0x80100023: 'SCARD_E_DIR_NOT_FOUND', 0x80100024: 'SCARD_E_FILE_NOT_FOUND',
  0x80100025: 'SCARD_E_NO_DIR', 0x80100026: 'SCARD_E_NO_FILE', 0x80100027: 'SCARD_E_NO_ACCESS',
  0x80100028: 'SCARD_E_WRITE_TOO_MANY', 0x80100029: 'SCARD_E_BAD_SEEK', 0x8010002a: 'SCARD_E_INVALID_CHV',
  0x8010002b: 'SCARD_E_UNKNOWN_RES_MNG', 0x8010002c: 'SCARD_E_NO_SUCH_CERTIFICATE', 0x8010002d: 'SCARD_E_CERTIFICATE_UNAVAILABLE',
  0x8010002e: 'SCARD_E_NO_READERS_AVAILABLE', 0x8010002f: 'SCARD_E_COMM_DATA_LOST', 0x80100030: 'SCARD_E_NO_KEY_CONTAINER',
  0x80100031: 'SCARD_E_SERVER_TOO_BUSY', 0x80100065: 'SCARD_W_UNSUPPORTED_CARD', 0x80100066: 'SCARD_W_UNRESPONSIVE_CARD',
  0x80100067: 'SCARD_W_UNPOWERED_CARD', 0x80100068: 'SCARD_W_RESET_CARD', 0x80100069: 'SCARD_W_REMOVED_CARD',
  0x8010006a: 'SCARD_W_SECURITY_VIOLATION', 0x8010006b: 'SCARD_W_WRONG_CHV', 0x8010006c: 'SCARD_W_CHV_BLOCKED',
  0x8010006d: 'SCARD_W_EOF', 0x8010006e: 'SCARD_W_CANCELLED_BY_USER', 0x8010006f: 'SCARD_W_CARD_NOT_AUTHENTICATED',
};

/** The codes senv itself raises (a released context, a cancel, a deadline, a stalled connection). */
export const SCARD_E_CANCELLED = 0x80100002;
export const SCARD_E_INVALID_HANDLE = 0x80100003;
export const SCARD_E_TIMEOUT = 0x8010000a;
export const SCARD_E_NOT_READY = 0x80100010;

export function scardName(code: number): string {
  return SCARD_CODES[code >>> 0] ?? `SCARD_0x${(code >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;
}

/** A PC/SC call failed: `scode` is the SCARD_* value, `scardName` its name. */
export class PcscError extends SenvError {
  declare readonly code: 'ERR_PCSC';
  readonly scode: number;
  readonly scardName: string;
  readonly operation: string;
  constructor(operation: string, scode: number, detail?: string) {
    const name = scardName(scode);
    super('ERR_PCSC', `${operation} failed: ${name} (0x${(scode >>> 0).toString(16).toUpperCase()})${detail ? `: ${detail}` : ''}`);
    this.scode = scode >>> 0;
    this.scardName = name;
    this.operation = operation;
  }

  override get kind(): string {
    return `${this.code} ${this.scardName}`;
  }
}

/**
 * The card answered with fewer than the two status bytes. pcscd reports
 * success with an empty response when the card disappears mid-command, so
 * this usually means the card was removed or the reader failed.
 */
export class ShortResponseError extends SenvError {
  declare readonly code: 'ERR_PCSC';
  readonly length: number;
  constructor(length: number) {
    super('ERR_PCSC', `SCardTransmit: the card returned ${length} bytes, fewer than the two status bytes (card removed or reader failure)`);
    this.length = length;
  }

  /** What an Mcs 5000 shows: no SCARD code to name, so what it most likely means. */
  override get kind(): string {
    return `${this.code} short response: card removed or reader failure`;
  }
}

/** The native bridge is not built or cannot load; the message says what to install. */
export class PcscUnavailableError extends SenvError {
  declare readonly code: 'ERR_PCSC_UNAVAILABLE';
  constructor(message: string) {
    super('ERR_PCSC_UNAVAILABLE', message);
  }
}

errorName(PcscError, 'PcscError');
errorName(ShortResponseError, 'ShortResponseError');
errorName(PcscUnavailableError, 'PcscUnavailableError');
