// HMAC_DRBG known answers (NIST CAVP, SP 800-90A: no reseed, reseed without
// and with prediction resistance) and the behaviour around them: request
// limits, automatic reseeding, errors, randomBytes.
import { HmacDrbg, randomBytes, LengthError, StateError, InvalidInputError, UnknownAlgorithmError, type HashName } from '../../src/index.ts';
import { type PortableCase, equalHex, equal, ok, throws, unhex, hex } from './harness.ts';
import { parseRsp } from './rsp.ts';
import { core } from '../../src/core/loader.ts';

const HASHES: HashName[] = ['SHA-256', 'SHA-384', 'SHA-512'];
const FOLDERS = ['no_reseed', 'pr_false', 'pr_true'] as const;

/** An entropy source that hands out the given values in order. */
function replay(values: Uint8Array[]): (n: number) => Uint8Array {
  let i = 0;
  return () => {
    const v = values[i++];
    if (!v) throw new Error('test entropy exhausted');
    return v;
  };
}

export const drbgCases: PortableCase[] = [];

for (const folder of FOLDERS) {
  drbgCases.push({
    name: `CAVP HMAC_DRBG ${folder} (SHA-256, SHA-384, SHA-512, every count)`,
    async run(read) {
      const recs = parseRsp(await read(`nist/drbg/${folder}/HMAC_DRBG.rsp`));
      let n = 0;
      for (const { section, fields, entries } of recs) {
        const hash = HASHES.find((h) => h in section);
        if (!hash || fields.ReturnedBits === undefined) continue;
        const values = (name: string) => entries.filter(([k]) => k === name).map(([, v]) => unhex(v));
        const pr = section.PredictionResistance === 'True';
        const entropy = [unhex(fields.EntropyInput!), unhex(fields.Nonce!), ...values('EntropyInputReseed'), ...values('EntropyInputPR')];
        const drbg = new HmacDrbg({ hash, personalization: unhex(fields.PersonalizationString!), predictionResistance: pr, entropy: replay(entropy) });
        if (fields.EntropyInputReseed !== undefined) drbg.reseed(unhex(fields.AdditionalInputReseed!));
        const outLen = Number(section.ReturnedBitsLen) / 8;
        const [a1, a2] = values('AdditionalInput');
        drbg.generate(outLen, a1);
        equalHex(drbg.generate(outLen, a2), fields.ReturnedBits, `${folder} ${hash} COUNT=${fields.COUNT}`);
        drbg.destroy();
        n++;
      }
      equal(n, 3 * 240, 'vectors run');
    },
  });
}

drbgCases.push({
  name: 'reseed interval forces a reseed with fresh entropy',
  run() {
    let calls = 0;
    const source = (n: number) => {
      calls++;
      return new Uint8Array(n).fill(calls);
    };
    const limited = new HmacDrbg({ entropy: source, reseedInterval: 2 });
    equal(calls, 2, 'entropy and nonce at instantiation');
    const a = limited.generate(32);
    limited.generate(32);
    equal(calls, 2, 'no reseed within the interval');
    const c = limited.generate(32);
    equal(calls, 3, 'third request reseeds first');
    // The same inputs with an explicit reseed give the same stream.
    let calls2 = 0;
    const twin = new HmacDrbg({ entropy: (n) => new Uint8Array(n).fill(++calls2) });
    equalHex(twin.generate(32), hex(a), 'first output');
    twin.generate(32);
    equalHex(twin.reseed().generate(32), hex(c), 'after reseed');
    limited.destroy();
    twin.destroy();
    // The reseed a request forces takes that request's additional input (SP 800-90A 9.3.1 step 7.1).
    const addin = Uint8Array.of(0xaa, 0xbb);
    let n1 = 0, n2 = 0;
    const forced = new HmacDrbg({ entropy: (n) => new Uint8Array(n).fill(++n1), reseedInterval: 1 });
    const explicit = new HmacDrbg({ entropy: (n) => new Uint8Array(n).fill(++n2) });
    equalHex(forced.generate(32), hex(explicit.generate(32)), 'first output');
    equalHex(forced.generate(32, addin), hex(explicit.reseed(addin).generate(32)), 'a forced reseed with the additional input');
    forced.destroy();
    explicit.destroy();
  },
});

drbgCases.push({
  name: 'limits and errors',
  run() {
    const drbg = new HmacDrbg({ hash: 'SHA-512' });
    equal(drbg.generate(65536).length, 65536, 'maximum request');
    throws(() => drbg.generate(65537), LengthError, 'request over 2^19 bits', /65536/);
    throws(() => drbg.generate(-1), InvalidInputError, 'negative count');
    throws(() => drbg.generate(8, 'x' as unknown as Uint8Array), InvalidInputError, 'additional input type');
    equal(drbg.generate(0).length, 0, 'empty request');
    drbg.destroy();
    throws(() => drbg.generate(8), StateError, 'after uninstantiate');
    throws(() => new HmacDrbg({ hash: 'SHA-1' as HashName }), UnknownAlgorithmError, 'unknown hash');
    throws(() => new HmacDrbg({ entropy: (n) => new Uint8Array(n - 1) }), LengthError, 'short entropy');
    throws(() => new HmacDrbg({ reseedInterval: 0 }), InvalidInputError, 'reseed interval 0');
    // SP 800-90A table 2: at most 2^48 requests between reseeds.
    new HmacDrbg({ reseedInterval: 2 ** 48 }).destroy();
    throws(() => new HmacDrbg({ reseedInterval: 2 ** 48 + 1 }), InvalidInputError, 'reseed interval 2^48 + 1');
    throws(() => new HmacDrbg({ entropy: new Uint8Array(48) as unknown as (n: number) => Uint8Array }), InvalidInputError, 'entropy not a function', /entropy must be a function/);
    throws(() => new HmacDrbg({ predictionResistance: 'no' as unknown as boolean }), InvalidInputError, 'predictionResistance not a boolean', /true or false/);
    equal(new HmacDrbg(null as unknown as undefined).generate(4).length, 4, 'null options are no options');
  },
});

drbgCases.push({
  name: 'a caller\'s entropy buffer is read, never wiped; the output leaves no copy in the core',
  run() {
    // A known-answer replay that hands out the same buffer every time.
    const fixed = new Uint8Array(48).map((_, i) => i + 1);
    const kept = fixed.slice();
    const a = new HmacDrbg({ entropy: () => fixed, predictionResistance: true });
    const b = new HmacDrbg({ entropy: () => fixed.slice(), predictionResistance: true });
    equalHex(a.generate(32), hex(b.generate(32)), 'same output as from fresh copies');
    a.reseed();
    b.reseed();
    equalHex(a.generate(32), hex(b.generate(32)), 'same output after reseeds');
    equalHex(fixed, hex(kept), 'the caller\'s buffer is unchanged');
    const out = randomBytes(64);
    ok(!hex(core().read(core().io, 256)).includes(hex(out)), 'no copy of the output in the I/O window');
  },
});

drbgCases.push({
  name: 'an entropy source that destroys its generator, and makes another where it was, ends the call with a StateError and leaves the other alone',
  run() {
    const ones = (n: number) => new Uint8Array(n).fill(1), twos = (n: number) => new Uint8Array(n).fill(2);
    for (const step of ['generate', 'reseed'] as const) {
      let calls = 0;
      let victim: HmacDrbg | undefined;
      // Calls 1 and 2 seed the constructor (entropy, nonce); call 3 is the reseed's.
      const d: HmacDrbg = new HmacDrbg({
        predictionResistance: true,
        entropy: (n) => {
          if (++calls === 3) {
            d.destroy();
            victim = new HmacDrbg({ entropy: twos });
          }
          return ones(n);
        },
      });
      throws(() => (step === 'generate' ? d.generate(16) : d.reseed()), StateError, `${step}: the destroyed generator`);
      equalHex(victim!.generate(32), hex(new HmacDrbg({ entropy: twos }).generate(32)), `${step}: the other generator drew from its own state only`);
      victim!.destroy();
    }
  },
});

drbgCases.push({
  name: 'randomBytes: lengths and distinct outputs',
  run() {
    equal(randomBytes(0).length, 0, 'zero bytes');
    const a = randomBytes(32), b = randomBytes(32);
    ok(hex(a) !== hex(b), 'two calls differ');
    const big = randomBytes(200_000);
    equal(big.length, 200_000, 'larger than one request');
    // A zero run of 64 bytes would mean a chunk was never filled.
    const zeros = new Uint8Array(64);
    for (let off = 0; off + 64 <= big.length; off += 65536) ok(hex(big.subarray(off, off + 64)) !== hex(zeros), `chunk at ${off} filled`);
    throws(() => randomBytes(1.5), InvalidInputError, 'fractional count');
    throws(() => randomBytes(2 ** 52), LengthError, 'more than an array can hold', /more than this runtime can allocate/);
  },
});
