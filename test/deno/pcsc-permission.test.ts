// Deno loads the native PC/SC bridge only with --allow-ffi, which this suite
// does not grant: the error must say that, not advise installing packages.
import { loadNative } from '../../src/pcsc/native.ts';
import { PcscUnavailableError } from '../../src/pcsc/errors.ts';

declare const Deno: {
  test(name: string, fn: () => void | Promise<void>): void;
  statSync(path: string | URL): unknown;
};

const built = (() => {
  try {
    Deno.statSync(new URL('../../native/build/Release/senv_pcsc.node', import.meta.url));
    return true;
  } catch {
    return false;
  }
})();

Deno.test(`PC/SC bridge without --allow-ffi: ${built ? 'the error names the permission' : 'not built here, the error says so'}`, () => {
  let error: unknown;
  try {
    loadNative();
  } catch (e) {
    error = e;
  }
  if (!(error instanceof PcscUnavailableError)) throw new Error(`expected PcscUnavailableError, got ${String(error)}`);
  const expected = built ? /needs permission to load: run Deno with --allow-ffi=\S+senv_pcsc\.node$/ : /is not built: /;
  if (!expected.test(error.message)) throw new Error(`unexpected message: ${error.message}`);
});
