// Deno's permissions, asked before each use: in a terminal, Deno stops at an
// interactive prompt for one that is not granted and waits for an answer no
// engine or card process can give. Elsewhere everything is granted.

import { failureKind } from './errors.ts';

export type Permission = { name: 'read' | 'write' | 'ffi'; path: string } | { name: 'env'; variable: string } | { name: 'sys'; kind: 'homedir' };

/** Whether the runtime grants `p` (always, outside Deno). May throw Deno's TypeError for a name it refuses ("A=B"). */
export function granted(p: Permission): boolean {
  const deno = (globalThis as { Deno?: { permissions: { querySync(p: Permission): { state: string } } } }).Deno;
  return !deno || deno.permissions.querySync(p).state === 'granted';
}

/**
 * What refused a file or variable: the failure's code or name and, where Deno's permissions or Node's
 * (`--permission`, whose refusals are ERR_ACCESS_DENIED) refused it, the flags that grant it.
 */
export function refusalOf(e: unknown, denoFlags: string, nodeFlags?: string): string {
  const kind = failureKind(e);
  if (kind === 'NotCapable') return `${kind}; on Deno: ${denoFlags}`;
  return kind === 'ERR_ACCESS_DENIED' && nodeFlags ? `${kind}; on Node: ${nodeFlags}` : kind;
}
