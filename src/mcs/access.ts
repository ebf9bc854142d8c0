// Access control (TS-0016 clause 7.2.2 and TS-0001 clause 9.6.2, as the Mcs
// issue sets it): the creator of a resource, or of any resource above it,
// may do everything with it; anyone else needs a privilege in the first
// accessControlPolicyIDs found from the resource upwards. Virtual resources
// are checked on their parent. An <accessControlPolicy> itself is governed
// by its selfPrivileges, and so is pointing a resource at other policies:
// a privilege to UPDATE a resource must not let its holder swap the policy
// that granted it for one of its own (TS-0001's description of acpi, as we
// recall it: a change needs UPDATE in the selfPrivileges of its policies).
import type { Resource } from './resource.ts';
import { ACP_TY, grants, type AccessRule } from './types/acp.ts';

export const OP_BITS = { 1: 1, 2: 2, 3: 4, 4: 8 } as const;

type Lookup = (ri: string) => Resource | undefined;

export function isAllowed(res: Resource, originator: string, opBit: number, lookup: Lookup): boolean {
  res = governing(res);
  if (createdBy(res, originator)) return true;
  if (res.ty === ACP_TY) return grants(rulesOf(res, 'selfPrivileges'), originator, opBit);
  return policiesGrant(res, lookup, 'privileges', originator, opBit);
}

/** Whether the originator may change which policies govern `res` (its accessControlPolicyIDs). */
export function mayRepoint(res: Resource, originator: string, lookup: Lookup): boolean {
  res = governing(res);
  return createdBy(res, originator) || policiesGrant(res, lookup, 'selfPrivileges', originator, OP_BITS[3]);
}

/**
 * The resource whose policies apply: a type without acpi of its own
 * (<algorithmSpecificParameter>: "shall inherit the same access control
 * policies of the parent <cipher>", clause 7.5.1.5) is its parent's
 * entirely, its own creator counting for nothing once the parent's policy
 * no longer grants it.
 */
function governing(res: Resource): Resource {
  while (res.ty !== ACP_TY && res.parent && !res.def.byName.has('accessControlPolicyIDs')) res = res.parent;
  return res;
}

function createdBy(res: Resource, originator: string): boolean {
  for (let r: Resource | undefined = res; r; r = r.parent) if (r.creator === originator) return true;
  return false;
}

/** Whether a policy of the first non-empty acpi from `res` upwards grants `opBit` in its `rules`. */
function policiesGrant(res: Resource, lookup: Lookup, rules: 'privileges' | 'selfPrivileges', originator: string, opBit: number): boolean {
  for (let r: Resource | undefined = res; r; r = r.parent) {
    const ids = r.attrs.get('accessControlPolicyIDs') as string[] | undefined;
    if (ids && ids.length) {
      return ids.some((id) => {
        const acp = lookup(id);
        return acp !== undefined && acp.ty === ACP_TY && grants(rulesOf(acp, rules), originator, opBit);
      });
    }
  }
  return false;
}

function rulesOf(acp: Resource, name: string): AccessRule[] {
  return (acp.attrs.get(name) as { acr: AccessRule[] } | undefined)?.acr ?? [];
}
