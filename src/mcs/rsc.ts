// Response status codes (TS-0004 clause 6.6) used over Mcs, and the error
// that carries one from anywhere in the layer to the response.
import { failureKind, InvalidInputError, SenvError, errorName } from '../core/errors.ts';

/** The response status codes (TS-0004 clause 6.6) the Mcs layer answers, by name. */
export const RSC = {
  OK: 2000,
  CREATED: 2001,
  DELETED: 2002,
  UPDATED: 2004,
  BAD_REQUEST: 4000,
  RELEASE_VERSION_NOT_SUPPORTED: 4001,
  NOT_FOUND: 4004,
  OPERATION_NOT_ALLOWED: 4005,
  REQUEST_TIMEOUT: 4008,
  CONTENTS_UNACCEPTABLE: 4102,
  ORIGINATOR_HAS_NO_PRIVILEGE: 4103,
  CONFLICT: 4105,
  ORIGINATOR_HAS_NOT_REGISTERED: 4106,
  INVALID_CHILD_RESOURCE_TYPE: 4108,
  ORIGINATOR_HAS_ALREADY_REGISTERED: 4117,
  INTERNAL_SERVER_ERROR: 5000,
  NOT_IMPLEMENTED: 5001,
  NON_BLOCKING_REQUEST_NOT_SUPPORTED: 5206,
  NOT_ACCEPTABLE: 5207,
} as const;

/** A response status code the Mcs layer answers (RSC's values). */
export type ResponseStatusCode = (typeof RSC)[keyof typeof RSC];

/**
 * A request that cannot be served as asked. `message` becomes the response's
 * m2m:dbg: short, naming the attribute or parameter, never containing key or
 * data bytes.
 */
export class McsError extends SenvError {
  declare readonly code: 'ERR_MCS';
  /** The response status code of the refusal (4106 not registered, 4103 no privilege, …). */
  readonly rsc: ResponseStatusCode;
  constructor(rsc: ResponseStatusCode, message: string) {
    // A refused request is an answer, not a bug: capturing a stack trace
    // would cost more than serving the request (a flood of bad requests).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super('ERR_MCS', message);
    Error.stackTraceLimit = limit;
    this.rsc = rsc;
  }
}

export const badRequest = (message: string) => new McsError(RSC.BAD_REQUEST, message);

/** A caller's text (a name, an originator) as an m2m:dbg quotes it: its start only, so that the dbg stays short. */
export const quoted = (text: string, max = 64): string => (text.length > max ? `${text.slice(0, max)}…` : text);

/**
 * What reading a caller's request raised, as the client error it is: the
 * McsErrors of the checks as they are, a byte value the core facade refused
 * (a view of a detached buffer) with its message, anything else (only a
 * getter, proxy trap or iterator of the caller's objects throws while they
 * are read) as 4000 without its message, which could hold anything.
 */
export function unreadable(e: unknown, what: string): McsError {
  if (isA(e, McsError)) return e;
  return badRequest(isA(e, InvalidInputError) ? e.message : `${what} cannot be read (a getter or proxy of it threw)`);
}

/**
 * `e instanceof C` for anything a caller's code may have thrown: false for a
 * value whose prototype cannot be read (a revoked proxy, a getPrototypeOf
 * trap that throws), where instanceof itself would throw.
 */
export function isA<T>(e: unknown, C: abstract new (...args: never[]) => T): e is T {
  try {
    return e instanceof C;
  } catch {
    return false;
  }
}

/**
 * What a 5000 shows of an error: its kind (the code, refined by what carries no data), never its
 * message; core messages carry no key or data bytes, but a backend's or an unexpected error's might.
 * Of any other error its code or class name (failureKind: `TypeError`, `ENOENT`, a typed error of
 * another copy of senv), which tells a backend's author where to look and carries no data.
 */
export function kindOf(e: unknown): string {
  return isA(e, SenvError) ? e.kind : failureKind(e);
}

errorName(McsError, 'McsError');
