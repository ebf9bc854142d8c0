// Request and response primitives of the Mcs reference point (TS-0004
// clause 7 with TS-0016 clause 7.2.2: blocking requests only, no NOTIFY).
// JSON uses the short names; the long names are accepted in requests too.
import { parseTimestamp } from './codec.ts';
import { shown } from '../core/args.ts';
import { badRequest, McsError, quoted, RSC, unreadable, type ResponseStatusCode } from './rsc.ts';

/** The operations of a request primitive's `op` (TS-0004): 1 CREATE, 2 RETRIEVE, 3 UPDATE, 4 DELETE. */
export const Operation = { CREATE: 1, RETRIEVE: 2, UPDATE: 3, DELETE: 4 } as const;
export type Operation = (typeof Operation)[keyof typeof Operation];

/** A request primitive (TS-0004 short names) as McsEngine.send() reads it; docs/mcs.md "Primitives". */
export interface McsRequest {
  /** operation: 1 CREATE, 2 RETRIEVE, 3 UPDATE, 4 DELETE (Operation). */
  op: Operation;
  /** Target address: `<M2M-SE-ID>[/<resourceID or resourceName path>[/<virtual resource>]]`, optionally with a leading '/'. */
  to: string;
  /** Originator: AE-ID or CSE-ID. */
  fr: string;
  /** requestIdentifier, echoed in the response. */
  rqi: string;
  /** resourceType of a CREATE: 1 <accessControlPolicy>, 20001-20012 the TS-0016 types. */
  ty?: number | undefined;
  /** primitiveContent: one member named by the resource type's root (`senv:Cph`), holding its attributes. */
  pc?: Record<string, unknown> | undefined;
  /** releaseVersionIndicator: '2a', '3', '4' or '5'. */
  rvi?: string | undefined;
  /**
   * resultContent: 0 nothing, 1 attributes (the default for CREATE, RETRIEVE, UPDATE; DELETE answers nothing),
   * 9 modifiedAttributes (UPDATE only: what an UPDATE answers either way, docs/mcs.md "Primitives").
   */
  rcn?: 0 | 1 | 9 | undefined;
  /** requestExpirationTimestamp: a oneM2M timestamp, or milliseconds from the time the request was sent. */
  rqet?: string | number | undefined;
  /**
   * responseType (TS-0004 m2m:responseType), by TS-0004's numbers: 3 blockingRequest (the default) and
   * 4 flexBlocking are served (blocking); 1 and 2 (non-blocking) and 5 (noResponse) answer 5206.
   */
  rt?: { rtv: 1 | 2 | 3 | 4 | 5 } | undefined;
  /** originatingTimestamp: a oneM2M timestamp (checked, otherwise unused). */
  ot?: string | undefined;
}

/** A response primitive, as McsEngine.send() resolves to it. */
export interface McsResponse {
  /** responseStatusCode (TS-0004): 2xxx success, 4xxx the request's fault, 5xxx the SE's (RSC). */
  rsc: ResponseStatusCode;
  /** The request's requestIdentifier. */
  rqi: string;
  /** primitiveContent: the resource or the operation's result, or on a failure `{ 'm2m:dbg': text }`. */
  pc?: Record<string, unknown>;
  /** The request's releaseVersionIndicator, when it had a supported one. */
  rvi?: string;
}

/** Options of McsEngine.send(). */
export interface SendOptions {
  /** Byte attributes in the response as Uint8Array (in-process callers) instead of base64. */
  binary?: boolean | undefined;
}

/** Release versions whose primitives this layer accepts (TS-0004 releaseVersionIndicator). */
const RELEASE_VERSIONS = ['2a', '3', '4', '5'] as const;

const LONG: Readonly<Record<string, string>> = {
  operation: 'op', from: 'fr', requestIdentifier: 'rqi', resourceType: 'ty', primitiveContent: 'pc', content: 'pc',
  releaseVersionIndicator: 'rvi', responseType: 'rt', resultContent: 'rcn', originatingTimestamp: 'ot',
  requestExpirationTimestamp: 'rqet',
};
/** A short request parameter name (a switch: a Set lookup per key would cost more than the rest of the scan). */
function isShort(k: string): boolean {
  switch (k) {
    case 'op': case 'to': case 'fr': case 'rqi': case 'ty': case 'pc': case 'rvi':
    case 'rt': case 'rcn': case 'ot': case 'rqet': return true;
    default: return false;
  }
}

const MAX_RQI = 1024;

/** The request identifier to echo, even from a request too malformed to parse (or to read, or one too long to take: then none). */
export function requestId(raw: unknown): string {
  const v = member(raw, 'rqi', 'requestIdentifier');
  return typeof v === 'string' && v.length <= MAX_RQI ? v : '';
}

/** The release version to echo, even from a request too malformed to parse: only a supported one (an unsupported one is the 4001 itself). */
export function releaseVersion(raw: unknown): string | undefined {
  const v = member(raw, 'rvi', 'releaseVersionIndicator');
  return (RELEASE_VERSIONS as readonly unknown[]).includes(v) ? (v as string) : undefined;
}

/** A parameter of a request that could not be parsed, by short or long name; undefined where reading it throws (send() answers, never rejects). */
function member(raw: unknown, short: string, long: string): unknown {
  if (typeof raw !== 'object' || raw === null) return undefined;
  try {
    const r = raw as Record<string, unknown>;
    return Object.hasOwn(r, short) ? r[short] : Object.hasOwn(r, long) ? r[long] : undefined;
  } catch {
    return undefined;
  }
}

function longToShort(raw: Record<string, unknown>): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    // Own members only: 'toString' or '__proto__' must not find Object.prototype's.
    const key = isShort(k) ? k : Object.hasOwn(LONG, k) ? LONG[k] : undefined;
    if (!key) throw badRequest(`request parameter '${quoted(k)}' is not supported over Mcs`);
    if (key in r) throw badRequest(`request parameter ${key} given twice`);
    r[key] = v;
  }
  return r;
}

/**
 * Checks the envelope of a request; the content is checked against the
 * resource type later. A getter or proxy trap of the request that throws is
 * the client's error (4000), like any other malformed request.
 */
export function parseRequest(raw: unknown): McsRequest {
  try {
    return parse(raw);
  } catch (e) {
    throw unreadable(e, 'the request');
  }
}

function parse(raw: unknown): McsRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest('request must be a JSON object');
  let r = raw as Record<string, unknown>;
  // Only own members count. A plain object with short names only (the common case) is read in
  // place; any other (long names, or a prototype of its own, whose members destructuring would
  // read) is copied member by member first.
  const proto = Object.getPrototypeOf(r);
  if (proto !== Object.prototype && proto !== null) r = longToShort(r);
  else {
    for (const k in r) {
      if (isShort(k)) continue;
      r = longToShort(r);
      break;
    }
  }
  const { op, to, fr, rqi, ty, pc, rvi, rt, rcn, ot, rqet } = r;
  if (typeof rqi !== 'string' || rqi.length === 0 || rqi.length > MAX_RQI) throw badRequest(`rqi (request identifier) must be a string of 1 to ${MAX_RQI} characters`);
  if (op === 5) throw new McsError(RSC.OPERATION_NOT_ALLOWED, 'NOTIFY is not supported over Mcs');
  if (op !== 1 && op !== 2 && op !== 3 && op !== 4) throw badRequest('op must be 1 CREATE, 2 RETRIEVE, 3 UPDATE or 4 DELETE');
  if (typeof to !== 'string' || to.length === 0 || to.length > 4096) throw badRequest('to must be an address of 1 to 4096 characters');
  if (typeof fr !== 'string' || fr.length === 0 || fr.length > 1024) throw badRequest('fr (originator) must be an AE-ID or CSE-ID of 1 to 1024 characters');
  // A release is a string (TS-0004 m2m:releaseVersion): a number is a malformed request, not an unknown release.
  if (rvi !== undefined && typeof rvi !== 'string') throw badRequest(`rvi (releaseVersionIndicator) must be a string, one of ${RELEASE_VERSIONS.join(', ')}, got ${shown(rvi)}`);
  if (rvi !== undefined && !(RELEASE_VERSIONS as readonly unknown[]).includes(rvi)) {
    throw new McsError(RSC.RELEASE_VERSION_NOT_SUPPORTED, `rvi must be one of ${RELEASE_VERSIONS.join(', ')}`);
  }
  // Absent and of the wrong kind are told apart: a CSE that sent ty as a string ("20004") did send it.
  if (op === 1 && ty === undefined) throw badRequest('ty (resource type) is mandatory for CREATE');
  if (op === 1 && (typeof ty !== 'number' || !Number.isInteger(ty))) throw badRequest(`ty (resource type) must be a whole number (table 9.1-1), got ${shown(ty)}`);
  if ((op === 1 || op === 3) && pc === undefined) throw badRequest('pc (content) is mandatory for CREATE and UPDATE');
  if ((op === 1 || op === 3) && (typeof pc !== 'object' || pc === null || Array.isArray(pc))) throw badRequest(`pc (content) must be an object holding one element, got ${shown(pc)}`);
  if (rt !== undefined) responseType(rt);
  if (ot !== undefined && (typeof ot !== 'string' || parseTimestamp(ot) === undefined)) throw badRequest('ot (originatingTimestamp) must be a oneM2M timestamp');
  if (rqet !== undefined && !(typeof rqet === 'string' ? parseTimestamp(rqet) !== undefined : Number.isSafeInteger(rqet) && (rqet as number) >= 0)) {
    throw badRequest('rqet (requestExpirationTimestamp) must be a oneM2M timestamp or a number of milliseconds');
  }
  // Every field present, absent ones undefined: one object shape for every request the engine reads.
  return {
    op, to, fr, rqi,
    ty: op === 1 ? (ty as number) : undefined,
    pc: op === 1 || op === 3 ? (pc as Record<string, unknown>) : undefined,
    rvi: rvi as string | undefined,
    rcn: rcn === undefined ? undefined : resultContent(op as Operation, rcn),
    rqet: rqet as string | number | undefined,
  };
}

/**
 * rt (TS-0004 m2m:responseType): every request over Mcs is blocking (TS-0016 7.2.2), rtv 3, the
 * default; 4 flexBlocking lets the receiver choose, so it is blocking too. 1 and 2 (non-blocking,
 * synchronous and asynchronous) and 5 (noResponse: the receiver would answer nothing) are modes Mcs
 * does not have.
 */
function responseType(rt: unknown): void {
  const rtv = typeof rt === 'object' && rt !== null ? member(rt, 'rtv', 'responseTypeValue') : undefined;
  if (rtv === 3 || rtv === 4) return;
  if (rtv === 1 || rtv === 2 || rtv === 5) throw new McsError(RSC.NON_BLOCKING_REQUEST_NOT_SUPPORTED, `only blocking requests are served over Mcs (rt rtv 3, not ${rtv})`);
  throw badRequest('rt (responseType) must be { "rtv": 3 } (blocking)');
}

/**
 * rcn: what this layer answers with, named; anything else is refused rather than ignored. An UPDATE
 * answers the attributes it modified (with ri and lt) whichever of 1 and 9 (TS-0004's
 * modifiedAttributes) was asked: a CSE that asks for exactly that is served, not refused.
 */
function resultContent(op: Operation, rcn: unknown): 0 | 1 | 9 {
  if (rcn === 1 && op !== 4) return 1;
  if (rcn === 0 && op !== 2) return 0;
  if (rcn === 9 && op === 3) return 9;
  throw badRequest(`rcn (resultContent) ${shown(rcn)} is not supported for ${OP_NAMES[op]}: ${RESULT_CONTENTS[op]}`);
}

const RESULT_CONTENTS = {
  1: '0 (nothing) or 1 (attributes)', 2: '1 (attributes)', 3: '0 (nothing), 1 (attributes) or 9 (modified attributes)', 4: '0 (nothing)',
} as const;

const OP_NAMES = { 1: 'CREATE', 2: 'RETRIEVE', 3: 'UPDATE', 4: 'DELETE' } as const;
