// onem2m-senv: the public API.
export * from './core/index.ts';
export * from './mcs/index.ts';
export { SoftwareBackend, type SoftwareBackendOptions } from './backends/software/index.ts';
export type * from './backends/backend.ts';
