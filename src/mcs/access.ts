// Access control (TS-0016 clause 7.2.2 and TS-0001 clause 9.6.2, as the Mcs
// issue sets it): the creator of a resource, or of any resource above it,
// may do everything with it; anyone else needs a privilege in the first
// accessControlPolicyIDs found from the resource upwards. Virtual resources
// are checked on their parent. An <accessControlPolicy> itself is governed
// by its selfPrivileges.
import type { Resource } from './resource.ts';
import { ACP_TY, grants, type AccessRule } from './types/acp.ts';

export const OP_BITS = { 1: 1, 2: 2, 3: 4, 4: 8 } as const;

export function isAllowed(res: Resource, originator: string, opBit: number, lookup: (ri: string) => Resource | undefined): boolean {
  // A type without acpi of its own (<algorithmSpecificParameter>: "shall inherit the same access
  // control policies of the parent <cipher>", clause 7.5.1.5) is its parent's entirely: its own
  // creator counts for nothing once the parent's policy no longer grants it.
  while (res.ty !== ACP_TY && res.parent && !res.def.byName.has('accessControlPolicyIDs')) res = res.parent;
  for (let r: Resource | undefined = res; r; r = r.parent) if (r.creator === originator) return true;
  if (res.ty === ACP_TY) return grants(rulesOf(res, 'selfPrivileges'), originator, opBit);
  for (let r: Resource | undefined = res; r; r = r.parent) {
    const ids = r.attrs.get('accessControlPolicyIDs') as string[] | undefined;
    if (ids && ids.length) {
      return ids.some((id) => {
        const acp = lookup(id);
        return acp !== undefined && acp.ty === ACP_TY && grants(rulesOf(acp, 'privileges'), originator, opBit);
      });
    }
  }
  return false;
}

function rulesOf(acp: Resource, name: string): AccessRule[] {
  return (acp.attrs.get(name) as { acr: AccessRule[] } | undefined)?.acr ?? [];
}
