// <cipher> algorithms (TS-0016 table 9.6-1) on the core's AES modes: GCM
// (1001, 1002), CCM (1003, 1004) and CCM_8 (1018, 1019) as RFC 5116 / RFC 6655
// fix them, and CBC with the four paddings (13, 22, 23, 24). The expanded key
// is cached on the key handle. AEAD decryption streams release nothing before
// final() verified the tag (the core holds the plaintext until then).
import { gcm } from '../../core/gcm.ts';
import { ccm } from '../../core/ccm.ts';
import { cbc } from '../../core/cbc.ts';
import type { CipherAlgorithm, CipherParams, CipherStream } from '../backend.ts';
import { CIPHERS, valuesOf } from '../algorithms.ts';
import { frozen } from '../../core/frozen.ts';
import type { SoftwareKey } from './keys.ts';
import { EMPTY } from '../../core/bytes.ts';
import { LazyStream } from './stream.ts';

export const CIPHER_ALGORITHMS = frozen(valuesOf(CIPHERS));

interface Mode {
  encrypt(data: Uint8Array): Uint8Array;
  decrypt(data: Uint8Array): Uint8Array;
  encryptStream(): { update(d: Uint8Array, into?: Uint8Array): Uint8Array; final(into?: Uint8Array): Uint8Array; destroy(): void };
  decryptStream(): { update(d: Uint8Array, into?: Uint8Array): unknown; final(into?: Uint8Array): Uint8Array; destroy(): void };
}

function mode(algorithm: CipherAlgorithm, key: SoftwareKey, params: CipherParams): Mode {
  const info = CIPHERS[algorithm];
  const k = key.aes();
  switch (info.mode) {
    case 'gcm': return gcm(k, params.nonce!, params.aad, { tagLength: info.tagLength! });
    case 'ccm': return ccm(k, params.nonce!, params.aad, { tagLength: info.tagLength! });
    case 'cbc': return cbc(k, params.iv!, { padding: info.padding! });
  }
}

export function openCipher(algorithm: CipherAlgorithm, key: SoftwareKey, direction: 'encrypt' | 'decrypt', params: CipherParams): CipherStream {
  const m = mode(algorithm, key, params);
  const s = new LazyStream(() => {
    const st = direction === 'encrypt' ? m.encryptStream() : m.decryptStream();
    return {
      update: (d, into) => {
        const out = st.update(d, into);
        return out instanceof Uint8Array ? out : EMPTY;
      },
      finish: (into) => st.final(into),
      destroy: () => st.destroy(),
    };
  }, (data) => (direction === 'encrypt' ? m.encrypt(data) : m.decrypt(data)));
  return {
    update: async (data, into) => s.update(data, into) ?? EMPTY,
    final: (last, into) => s.finish(last, into),
    abort: () => s.abort(),
  };
}
