// Prints what loading the PC/SC bridge gives under the permissions this Deno
// was started with (test/node/pcsc-deno.test.ts runs it with too few).
import { loadNative } from '../../src/pcsc/native.ts';

try {
  loadNative();
  console.log('loaded');
} catch (e) {
  console.log(`${(e as Error).name}: ${(e as Error).message}`);
}
