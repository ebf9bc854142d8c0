// Arguments as pcsc-lite and the bridge can take them, checked once for the
// PC/SC API and for the backend's options.
import { InvalidInputError } from '../core/errors.ts';
import { shown } from '../core/args.ts';
import { LONGEST_TIMER } from '../core/timers.ts';

/** pcsc-lite's MAX_READERNAME, its terminating NUL included. */
const MAX_READER_BYTES = 127;

/**
 * A reader name as pcsc-lite can take it: a C string, so one holding NUL would
 * name the reader before the NUL, and one longer than pcsc-lite keeps would be
 * cut to its first 127 bytes (another reader than the caller's, either way).
 */
export function checkReader(reader: unknown): string {
  if (typeof reader !== 'string' || reader === '') throw new InvalidInputError('reader must be a non-empty reader name');
  if (reader.includes('\0')) throw new InvalidInputError('reader name must not contain NUL (U+0000)');
  const bytes = new TextEncoder().encode(reader).length;
  if (bytes > MAX_READER_BYTES) throw new InvalidInputError(`reader name must be at most ${MAX_READER_BYTES} bytes in UTF-8, got ${bytes}`);
  return reader;
}

/** A timeout in milliseconds: above 0, Infinity (or absent) for none. */
export function checkTimeout(ms: unknown, name: string): number {
  if (ms === undefined || ms === Infinity) return Infinity;
  if (typeof ms !== 'number' || !(ms > 0) || !Number.isFinite(ms)) throw new InvalidInputError(`${name} must be a number of milliseconds above 0, or Infinity, got ${shown(ms)}`);
  return Math.min(Math.ceil(ms), LONGEST_TIMER);
}

const SHARE_MODES: readonly unknown[] = ['exclusive', 'shared', 'direct'];

export function checkShare(share: unknown): void {
  if (share !== undefined && !SHARE_MODES.includes(share)) throw new InvalidInputError(`share must be 'exclusive', 'shared' or 'direct', got ${shown(share)}`);
}

const PROTOCOLS: readonly unknown[] = ['T0', 'T1', 'RAW'];

/** A non-empty list of 'T0', 'T1' and 'RAW' (a string would be read letter by letter). */
export function checkProtocols(list: unknown): void {
  if (list === undefined) return;
  if (!Array.isArray(list) || list.length === 0 || !list.every((p) => PROTOCOLS.includes(p))) {
    throw new InvalidInputError(`protocols must be a non-empty array of 'T0', 'T1' and 'RAW', got ${shown(list)}`);
  }
}
