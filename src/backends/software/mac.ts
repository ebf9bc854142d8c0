// MAC signature algorithms (TS-0016 table 9.9-1): HMAC-SHA-256/384/512 (25,
// 26, 27), AES-CMAC (49, SP 800-38B) and AES CBC-MAC without padding (18).
// "Verification" of a MAC recomputes it and compares in constant time.
import { createHmac, hmac } from '../../core/hmac.ts';
import { cbcMac, cmac, createCbcMac, createCmac } from '../../core/cmac.ts';
import { constantTimeEqual } from '../../core/compare.ts';
import { HASHES, valuesOf } from '../algorithms.ts';
import { frozen } from '../../core/frozen.ts';
import { type SignatureAlgorithm, type SignatureStream } from '../backend.ts';
import { checkSignatureArg } from '../checks.ts';
import { LazyStream, type CoreStream } from './stream.ts';
import type { SoftwareKey } from './keys.ts';

// Keys are read when the MAC starts, so a key released meanwhile fails with
// StateError instead of MACing under zeroized bytes.
type MacFn = { oneShot(key: SoftwareKey, data: Uint8Array): Uint8Array; open(key: SoftwareKey): CoreStream };

function hmacFamily(hashAlg: 4 | 5 | 6): MacFn {
  const name = HASHES[hashAlg].coreName;
  return {
    oneShot: (key, data) => hmac(name, key.bytes, data),
    open: (key) => {
      const h = createHmac(name, key.bytes);
      return { update: (d) => void h.update(d), finish: () => h.digest(), destroy: () => h.destroy() };
    },
  };
}

function aesMac(oneShot: typeof cmac, create: typeof createCmac): MacFn {
  return {
    oneShot: (key, data) => oneShot(key.aes(), data),
    open: (key) => {
      const m = create(key.aes());
      return { update: (d) => void m.update(d), finish: () => m.digest(), destroy: () => m.destroy() };
    },
  };
}

const MACS: Partial<Record<SignatureAlgorithm, MacFn>> = {
  25: hmacFamily(4),
  26: hmacFamily(5),
  27: hmacFamily(6),
  49: aesMac(cmac, createCmac),
  18: aesMac(cbcMac, createCbcMac),
};

export const MAC_ALGORITHMS = frozen(valuesOf(MACS));

export function openMac(algorithm: SignatureAlgorithm, key: SoftwareKey): SignatureStream {
  const mac = MACS[algorithm]!;
  const s = new LazyStream(() => mac.open(key), (data) => mac.oneShot(key, data));
  return {
    update: async (data) => void s.update(data),
    sign: (last) => s.finish(last),
    verify: (signature, last) => {
      const candidate = checkSignatureArg(signature);
      return constantTimeEqual(s.finish(last), candidate);
    },
    abort: () => s.abort(),
  };
}
