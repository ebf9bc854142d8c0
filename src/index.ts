// onem2m-senv: the public API.
export * from './core/index.ts';
export * from './mcs/index.ts';
export { SoftwareBackend, type SoftwareBackendOptions } from './backends/software/index.ts';
export type * from './backends/backend.ts';
// A backend written outside senv registers the key handles it hands out.
export { markKeyHandle } from './backends/backend.ts';
