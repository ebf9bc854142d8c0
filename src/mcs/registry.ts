// Every resource type the Mcs layer knows, compiled once.
import { compile, type CompiledType, type ResourceType } from './schema.ts';
import { seType, SE_TY } from './types/se.ts';
import { deviceInfoType, memoryType, seRebootType } from './types/mgmt.ts';
import { accessControlPolicyType } from './types/acp.ts';
import { sensitiveDataObjectType } from './types/sdo.ts';
import { cipherType } from './types/cipher.ts';
import { algorithmSpecificParameterType } from './types/algParam.ts';
import { randType } from './types/rand.ts';
import { hashType } from './types/hash.ts';
import { signatureType } from './types/signature.ts';

export const TYPES: readonly ResourceType[] = [
  seType, seRebootType, deviceInfoType, memoryType, accessControlPolicyType, sensitiveDataObjectType,
  cipherType, algorithmSpecificParameterType, randType, hashType, signatureType,
];

/**
 * Types the child tables of TS-0016 name that senv does not implement, by name: those of table
 * 9.1-1 a later release implements (clauses 7.6, 7.7), and the oneM2M types table 7.3.1-1 lists
 * below an [SEReboot]. A CREATE of one where its parent's table lists it answers 5001; anywhere
 * else, like any type the parent does not take, 4108.
 */
export const NOT_IMPLEMENTED: Readonly<Record<number, string>> = {
  20003: 'connectionInstance',
  20005: 'identity',
  20008: 'secureConnection',
  // Clause 7.2.2 leaves <subscription> (and NOTIFY) out of Mcs, though table 7.3.1-1 lists it.
  23: 'subscription',
  24: 'semanticDescriptor',
};

const compiled = new Map<ResourceType, CompiledType>(TYPES.map((t) => [t, compile(t)]));

export function compiledType(t: ResourceType): CompiledType {
  return compiled.get(t)!;
}

/** Client-creatable types by ty (mgmtObjs other than SEReboot are maintained by the SE). */
export const CREATABLE: ReadonlyMap<number, CompiledType> = new Map(
  TYPES.filter((t) => !t.systemOnly).map((t) => [t.ty, compiledType(t)]),
);

/** Types an <SE> registration can hold, directly or below its children. */
export const REGISTRATION_TYPES: readonly number[] = [...CREATABLE.keys()].filter((ty) => ty !== SE_TY);
