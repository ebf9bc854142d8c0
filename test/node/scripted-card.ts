// A card on a byte channel that follows a script: what the APDU layers'
// tests use to see exactly which commands go out and how answers are read.
import { expect } from 'vitest';
import { fromHex, hex } from '../../src/apdu/apdu.ts';
import type { ByteChannel } from '../../src/apdu/transport.ts';

/**
 * A card that expects exactly these commands (hex) and answers these responses (hex; an Error: no answer,
 * transmit throws it). `given` keeps the answers it gave, as the layers left them.
 */
export function scripted(script: [string, string | Error][]): ByteChannel & { done(): void; given: Uint8Array[] } {
  let i = 0;
  const given: Uint8Array[] = [];
  return {
    given,
    async transmit(apdu) {
      const step = script[i++];
      if (!step) throw new Error(`unexpected command ${hex(apdu)}`);
      expect(hex(apdu)).toBe(step[0].replace(/\s/g, '').toUpperCase());
      if (step[1] instanceof Error) throw step[1];
      given.push(fromHex(step[1]));
      return given[given.length - 1]!;
    },
    done: () => expect(i).toBe(script.length),
  };
}
