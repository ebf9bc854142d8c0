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
  return v instanceof Promise ? v.then(fn) : fn(v);
}

/** Runs fn; a failure, thrown now or rejected later, is replaced by map(failure). */
export function mapFailure<R>(fn: () => MaybePromise<R>, map: (e: unknown) => unknown): MaybePromise<R> {
  let r: MaybePromise<R>;
  try {
    r = fn();
  } catch (e) {
    throw map(e);
  }
  return r instanceof Promise ? r.catch((e: unknown) => Promise.reject(map(e))) : r;
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
  if (!(r instanceof Promise)) {
    done();
    return r;
  }
  return r.finally(done);
}
