// <accessControlPolicy> (TS-0001 clause 9.6.2, short names of TS-0004), as
// far as Mcs uses it: privileges and selfPrivileges are lists of rules
// { acor: originators, acop: operations }, acop a bit set CREATE 1,
// RETRIEVE 2, UPDATE 4, DELETE 8 (NOTIFY 16 and DISCOVERY 32 are accepted and
// unused). 'all' in acor matches every registered originator.
import { badRequest, McsError, RSC } from '../rsc.ts';
import type { ResourceType } from '../schema.ts';

export const ACP_TY = 1;

/** Rules in one pv or pvs, at most. */
const MAX_RULES = 64;

export interface AccessRule { acor: string[]; acop: number }

/**
 * The parts of a TS-0001 access control rule this SE does not evaluate. A
 * rule grants only when all its parts match: stored without them it would
 * grant more than it says, so a rule with one is refused.
 */
const UNSUPPORTED_RULE_PARTS: Readonly<Record<string, string>> = {
  acco: 'accessControlContexts', acod: 'accessControlObjectDetails', acaf: 'accessControlAuthenticationFlag',
};

/** Validates and normalizes a privileges value: { acr: [{ acor: [...], acop: n }] }. */
function parsePrivileges(sn: string, v: unknown): AccessRule[] {
  const bad = () => badRequest(`${sn} must be { "acr": [{ "acor": [originator, ...], "acop": 1..63 }] }`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad();
  for (const k of Object.keys(v)) if (k !== 'acr') throw bad();
  const acr = (v as { acr?: unknown }).acr;
  if (!Array.isArray(acr)) throw bad();
  // Named apart: well-formed rules told only the form they already have would not say what to change.
  if (acr.length > MAX_RULES) throw badRequest(`${sn} holds at most ${MAX_RULES} rules (acr), got ${acr.length}`);
  return acr.map((r: unknown) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad();
    for (const k of Object.keys(r)) {
      if (k === 'acor' || k === 'acop') continue;
      if (Object.hasOwn(UNSUPPORTED_RULE_PARTS, k)) throw new McsError(RSC.NOT_IMPLEMENTED, `${sn}: ${k} (${UNSUPPORTED_RULE_PARTS[k]}) is not supported by this SE: a rule with it would grant more than it says`);
      throw bad();
    }
    const { acor, acop } = r as { acor?: unknown; acop?: unknown };
    if (!Array.isArray(acor) || acor.length === 0 || !acor.every((x) => typeof x === 'string' && x.length > 0)) throw bad();
    if (typeof acop !== 'number' || !Number.isInteger(acop) || acop < 1 || acop > 63) throw bad();
    return { acor: [...acor] as string[], acop };
  });
}

export function grants(rules: readonly AccessRule[], originator: string, op: number): boolean {
  return rules.some((r) => (r.acop & op) !== 0 && (r.acor.includes(originator) || r.acor.includes('all')));
}

function normalize(values: Map<string, unknown>): void {
  for (const [name, sn] of [['privileges', 'pv'], ['selfPrivileges', 'pvs']] as const) {
    if (values.has(name)) values.set(name, { acr: parsePrivileges(sn, values.get(name)) });
  }
}

export const accessControlPolicyType: ResourceType = {
  ty: ACP_TY,
  name: 'accessControlPolicy',
  root: 'm2m:acp',
  longRoot: 'm2m:accessControlPolicy',
  common: ['et', 'lbl', 'cr'],
  attributes: [
    { name: 'privileges', sn: 'pv', access: 'RW', create: 'M', update: 'O', type: { kind: 'any' } },
    { name: 'selfPrivileges', sn: 'pvs', access: 'RW', create: 'M', update: 'O', type: { kind: 'any' } },
  ],
  children: [],
  hooks: {
    async create(_ctx, res) {
      normalize(res.attrs);
    },
    update(_ctx, _res, changes) {
      normalize(changes);
    },
  },
};
