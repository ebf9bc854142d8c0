// Continuing on a backend's answer that may or may not be a promise
// (backend.ts MaybePromise): at once for a value, so that a small operation
// on an in-process backend takes no asynchronous turn; after it settles for a
// promise.
import type { MaybePromise } from '../backends/backend.ts';

/**
 * fn(value) now for a value, once it resolves for a promise. (Not named
 * `then`: a module that exports `then` is a thenable, and awaiting its
 * namespace, as a dynamic import does, calls it.)
 */
export function after<T, R>(v: MaybePromise<T>, fn: (value: T) => MaybePromise<R>): MaybePromise<R> {
  const p = pending(v);
  return p ? p.then(fn) : fn(v as T);
}

/**
 * A backend's answer that is still to come, as a promise of this realm: a promise of another realm
 * (an iframe's, a vm context's) or any other thenable fails `instanceof Promise`, and would
 * otherwise be taken for the value itself. A value (bytes, a boolean, a stream) is no thenable.
 */
function pending<T>(v: MaybePromise<T>): Promise<T> | undefined {
  if (v instanceof Promise) return v;
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function' ? Promise.resolve(v) : undefined;
}

/**
 * What a backend method the contract types `void` returned (releaseKey, deleteKey, a stream's abort):
 * a promise it gave anyway (an `async` method, which TypeScript accepts for `void`) has its rejection
 * ignored, as the engine ignores a throw there, instead of left unhandled, which ends a Node process.
 */
export function unawaited(v: unknown): void {
  pending(v)?.catch(() => {});
}

/** Runs fn; a failure, thrown now or rejected later, is replaced by map(failure). */
export function mapFailure<R>(fn: () => MaybePromise<R>, map: (e: unknown) => unknown): MaybePromise<R> {
  let r: MaybePromise<R>;
  try {
    r = fn();
  } catch (e) {
    throw map(e);
  }
  const p = pending(r);
  return p ? p.catch((e: unknown) => Promise.reject(map(e))) : r;
}

/** Runs fn, then `done` whether it succeeded or failed (now or later). */
export function always<R>(fn: () => MaybePromise<R>, done: () => void): MaybePromise<R> {
  let r: MaybePromise<R>;
  try {
    r = fn();
  } catch (e) {
    done();
    throw e;
  }
  const p = pending(r);
  if (!p) {
    done();
    return r;
  }
  return p.finally(done);
}
