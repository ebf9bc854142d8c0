// Random bytes for <rand> (TS-0016 table 9.7-1) and for key generation.
// rngType 1 (pseudo RNG) is an SP 800-90A HMAC_DRBG (SHA-512) in the core,
// one instance per software SE, reseeded from the OS every 4096 requests as
// randomBytes' is and reinstantiated on reboot. rngType 2 asks for a true
// (physical) RNG: a software SE has none of its own, so it returns the
// runtime's entropy source (crypto.getRandomValues, i.e. the operating
// system's CSPRNG fed by hardware noise) and says so in deviceInfo.
import type { RngType } from '../backend.ts';
import { generateAll, hmacDrbg, OWN_RESEED_INTERVAL, systemRandom, type HmacDrbg } from '../../core/drbg.ts';
import { UnknownAlgorithmError } from '../../core/errors.ts';
import { shown } from '../../core/args.ts';
import { valuesOf } from '../algorithms.ts';
import { frozen } from '../../core/frozen.ts';

export const RNG_SOURCES: Partial<Record<RngType, string>> = frozen({
  1: 'HMAC_DRBG (SP 800-90A, SHA-512) in the senv WASM core, seeded from the operating system',
  2: 'operating system entropy via crypto.getRandomValues (the software SE has no physical RNG of its own)',
});

export const SOFTWARE_RNG_TYPES = frozen(valuesOf(RNG_SOURCES));

export class SoftwareRng {
  #drbg: HmacDrbg | undefined;

  /** Drops the DRBG state (zeroized); the next request instantiates a fresh one. */
  reset(): void {
    this.#drbg?.destroy();
    this.#drbg = undefined;
  }

  bytes(type: RngType, length: number): Uint8Array {
    if (type === 2) return systemRandom(length);
    if (type !== 1) throw new UnknownAlgorithmError(`rngType ${shown(type)} is not supported by the software SE`);
    return generateAll((this.#drbg ??= hmacDrbg({ hash: 'SHA-512', reseedInterval: OWN_RESEED_INTERVAL })), length);
  }
}
