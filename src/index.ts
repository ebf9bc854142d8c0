// onem2m-senv: the public API.
export * from './core/index.ts';
