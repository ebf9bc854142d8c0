// Attribute declarations shared by several resource types, and small helpers
// their modules use. Values of enums come from TS-0016 clause 9.
import type { AttributeDef } from '../schema.ts';
import { McsError, RSC } from '../rsc.ts';
import { AuthenticationError, InvalidValueError, LengthError, PaddingError } from '../../core/errors.ts';

export const keyData: AttributeDef = {
  name: 'keyData', sn: 'kDt', access: 'WO', create: 'O', update: 'NP', type: { kind: 'bytes' }, read: 'exportable', secret: true, key: true,
};

/** senv extension: keyData may be read back (RETRIEVE) only when this was true at CREATE. */
export const keyExportable: AttributeDef = {
  name: 'keyExportable', sn: 'kExp', access: 'WO', create: 'O', update: 'NP', type: { kind: 'bool' },
};

export const message: AttributeDef = {
  name: 'message', sn: 'msg', access: 'RW', create: 'O', update: 'O', type: { kind: 'bytes' }, secret: true, append: true,
};

export const notImplemented = (what: string) => new McsError(RSC.NOT_IMPLEMENTED, `${what} is not supported by this SE`);
export const notAllowed = (what: string) => new McsError(RSC.OPERATION_NOT_ALLOWED, what);

/** Turns what a backend reports about the data into the response a client can act on. */
export function dataError(e: unknown): unknown {
  if (e instanceof AuthenticationError) return new McsError(RSC.CONTENTS_UNACCEPTABLE, 'authentication failed: tag or MAC does not verify');
  if (e instanceof PaddingError) return new McsError(RSC.CONTENTS_UNACCEPTABLE, 'invalid padding');
  if (e instanceof LengthError || e instanceof InvalidValueError) return new McsError(RSC.CONTENTS_UNACCEPTABLE, e.message);
  return e;
}

/** Replaces a byte attribute, zeroizing the value it held. */
export function setBytes(attrs: Map<string, unknown>, name: string, value: Uint8Array): void {
  const old = attrs.get(name);
  if (old instanceof Uint8Array && old !== value) old.fill(0);
  attrs.set(name, value);
}
