// The Mcs resource layer (TS-0016 clause 7): the engine and its primitives.
export { McsEngine, type McsEngineOptions } from './engine.ts';
export { Operation, type McsRequest, type McsResponse, type SendOptions } from './primitive.ts';
export { RSC, McsError, type ResponseStatusCode } from './rsc.ts';
export { CIPHERS, SIGNATURES, HASHES, type CipherInfo, type SignatureInfo } from '../backends/algorithms.ts';
export type { Persistence, PersistedSe, PersistedResource } from './persist.ts';
export type { MasterKeyOptions } from './store/master-key.ts';
export type { Files } from './store/files.ts';
export type { RollbackAnchor } from './store/anchor.ts';
export { DataDirLockedError, DataDirDamagedError, DataDirFormatError, DataDirRolledBackError, MasterKeyRotationError, RollbackAnchorError } from './store/errors.ts';
export { McsClient, HashResource, CipherResource, SignatureResource, RandResource, SensitiveDataResource, PolicyResource, type McsResource, type MessageResource, type AccessRule, type CommonOptions, type RequestOptions } from './client.ts';
