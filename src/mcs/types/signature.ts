// <signature> (TS-0016 clause 7.5.4) with <calculateSignature>,
// <verifySignature> and <generateKey>. message UPDATEs append and stream into
// the backend: a MAC or the ECDSA hash does not depend on whether the end is
// a signing or a verification, so one stream serves both.
//
// senv extensions (docs/mcs.md): keyExportable, signatureFormat ('der', the
// default as on Java Card, or 'raw' r||s) and prehashed (message is already
// the digest). For ECDSA, keyInformation holds the public key as base64 of
// the uncompressed SEC1 point; with it alone a resource can verify.
import type { KeyHandle, MaybePromise, SignatureAlgorithm, SignatureOptions, SignatureStream } from '../../backends/backend.ts';
import { HASHES, PUBLIC_KEY_LENGTHS, SIGNATURES, valuesOf } from '../../backends/algorithms.ts';
import type { Change } from '../change.ts';
import { fromBase64, toBase64 } from '../codec.ts';
import { ecdsa } from '../../core/ecdsa.ts';
import type { Context } from '../context.ts';
import type { Resource } from '../resource.ts';
import type { Accumulator } from '../accumulator.ts';
import { badRequest } from '../rsc.ts';
import type { ResourceType, StreamSink } from '../schema.ts';
import { dataError, keyData, keyExportable, message, notAllowed, notImplemented } from './common.ts';
import { generateKey, keyAtCreate } from './keys.ts';
import { after, always, mapFailure, unawaited } from '../settle.ts';
import { broken, checked, keyHandle, opened, verdict, zeroize } from '../handed.ts';
import { derToRaw } from '../../core/ecdsa-der.ts';

interface SignatureSink extends StreamSink { readonly stream: SignatureStream }

const algorithm = (res: Resource) => res.attrs.get('algorithm') as SignatureAlgorithm;
const info = (res: Resource) => SIGNATURES[algorithm(res)];

function options(res: Resource): SignatureOptions {
  return { format: (res.attrs.get('signatureFormat') as 'der' | 'raw' | undefined) ?? 'der', prehashed: res.attrs.get('prehashed') === true };
}

/** ECDSA public key from keyInformation (or the value `v` about to be written there), or undefined when it holds none. */
function publicPoint(res: Resource, v = res.attrs.get('keyInformation')): Uint8Array | undefined {
  const curve = info(res).curve;
  if (!curve || typeof v !== 'string') return undefined;
  const p = fromBase64(v);
  return p && p.length === PUBLIC_KEY_LENGTHS[curve] && p[0] === 4 ? p : undefined;
}

/**
 * A kInf that has the form of the public key a resource without a secret key
 * verifies with must be a point of the curve: refused when written (4000),
 * not at every verification (4102). Checked by the core whatever the backend
 * (a card may import any bytes). Other kInf values stay free-form information.
 */
function checkPublicPoint(res: Resource, v: unknown): void {
  const point = res.key() === undefined ? publicPoint(res, v) : undefined;
  if (point && !ecdsa(info(res).curve!).isPublicKey(point)) throw badRequest(`kInf (keyInformation) has the form of an uncompressed SEC1 point but is not a point of ${info(res).curve}`);
}

/** Whether there is a key to sign or verify with: the secret key, or (ECDSA verification) a public key in keyInformation. */
const hasKey = (res: Resource) => res.key() !== undefined || publicPoint(res) !== undefined;

/**
 * The stream under the secret key, or for ECDSA verification under the
 * public key of keyInformation, imported first and deleted when the stream
 * ends (a card would otherwise keep it in a slot of its own for every
 * verification). Only when hasKey().
 */
function open(ctx: Context, res: Resource): MaybePromise<SignatureStream> {
  const { host } = ctx;
  const secret = res.key();
  if (secret) return after(host.backend.signature(algorithm(res), secret, options(res)), (s) => opened(s, 'signature stream'));
  const backend = host.backend;
  return backend.importKey({ use: 'signature', algorithm: algorithm(res) }, 'public', publicPoint(res)!).then(async (given) => {
    const key = keyHandle(host, given, 'made');
    const gone = () => host.deleteKey(key);
    let s: SignatureStream;
    try {
      s = opened(await host.backend.signature(algorithm(res), key, options(res)), 'signature stream');
    } catch (e) {
      gone();
      throw e;
    }
    return {
      update: (d) => s.update(d),
      sign: (last) => always(() => s.sign(last), gone),
      verify: (sig, last) => always(() => s.verify(sig, last), gone),
      abort: () => {
        try {
          unawaited(s.abort());
        } finally {
          gone();
        }
      },
    };
  });
}

/**
 * Signs or verifies the message held, which that ends (also when it fails).
 * Without a key the operation cannot start: 4005, and the message stays for
 * the next try, as for any refused request.
 */
function finish<T>(ctx: Context, res: Resource, change: Change, result: 'signature' | 'verificationResult', end: (s: SignatureStream, last: Uint8Array | undefined) => MaybePromise<T>): MaybePromise<T> {
  if (!hasKey(res)) throw notAllowed('no key: give kDt at CREATE, RETRIEVE generateKey, or (ECDSA verification) put the public key in kInf as base64 of its uncompressed SEC1 point (04 || x || y)');
  const data = res.attrs.get('message') as Accumulator | undefined;
  change.consumed = data !== undefined;
  const taken = data?.take('sig');
  // No earlier result stays beside the message a failed operation ended (as on <cipher>).
  const failed = (e: unknown) => {
    if (res.attrs.has(result)) change.attrs.set(result, null);
    return dataError(e);
  };
  return mapFailure(() => (taken ? end((taken.sink as SignatureSink).stream, taken.rest) : after(open(ctx, res), (s) => end(s, data?.bytes()))), failed);
}

/**
 * What sign() gave, checked (handed.ts): a MAC of its algorithm's length, a raw ECDSA signature of
 * twice the curve's coordinate, a DER one a strict ECDSA-Sig-Value whose integers fit the curve
 * (ecdsa-der.ts parses it: clients read it with the same strict rules).
 */
function signed(res: Resource, v: unknown): Uint8Array {
  const i = info(res);
  if (i.family !== 'ecdsa') return checked(v, 'a signature', i.hash ? HASHES[i.hash].outputLength : 16);
  const n = i.generatedKeyLength;
  if (options(res).format === 'raw') return checked(v, 'a signature', 2 * n);
  // Two INTEGERs of up to a coordinate and a sign byte, with their headers and the SEQUENCE's.
  const der = checked(v, 'a signature', 8, 2 * (n + 3) + 3);
  if (!derToRaw(der, n)) throw broken('a signature that is no DER ECDSA-Sig-Value of the curve');
  return der;
}

/** The uncompressed point of an ECDSA key, base64 as keyInformation holds it; undefined for another key. */
async function publicKeyOf(ctx: Context, res: Resource, key: KeyHandle): Promise<string | undefined> {
  const pub = await ctx.host.backend.publicKey(key);
  const curve = info(res).curve;
  if (!curve) return undefined;
  const point = checked(pub, 'a public key', PUBLIC_KEY_LENGTHS[curve], PUBLIC_KEY_LENGTHS[curve]);
  try {
    return toBase64(point);
  } finally {
    zeroize(point);
  }
}

/** A new signature, message or key makes an earlier verificationResult stale. */
function staleResult(res: Resource, values: Map<string, unknown>): void {
  if (res.attrs.has('verificationResult')) values.set('verificationResult', null);
}

const ecdsaOnly = ['signatureFormat', 'prehashed'];

export const signatureType: ResourceType = {
  ty: 20012,
  name: 'signature',
  root: 'senv:Sgn',
  longRoot: 'senv:signature',
  common: ['et', 'acpi', 'cr'],
  acpiFromParent: true,
  attributes: [
    message,
    { name: 'algorithm', sn: 'Salg', access: 'WO', create: 'M', update: 'NP', type: { kind: 'enum', values: valuesOf(SIGNATURES), table: 'table 9.9-1' } },
    keyData,
    keyExportable,
    { name: 'keyInformation', sn: 'kInf', access: 'RW', create: 'O', update: 'O', type: { kind: 'any' } },
    // Sealed at rest like the message it signs: with the public key beside it, an ECDSA signature confirms a guess of a low-entropy message.
    { name: 'signature', sn: 'Sgn', access: 'RW', create: 'O', update: 'O', type: { kind: 'bytes' }, secret: true },
    { name: 'verificationResult', sn: 'vR', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'bool' } },
    { name: 'signatureFormat', sn: 'sgF', access: 'WO', create: 'O', update: 'NP', type: { kind: 'string', values: ['der', 'raw'] } },
    { name: 'prehashed', sn: 'prH', access: 'WO', create: 'O', update: 'NP', type: { kind: 'bool' } },
  ],
  children: [],
  virtuals: [
    {
      name: 'calculateSignature', sn: 'cSgn', result: ['signature'],
      run(ctx, res, change) {
        if (!res.key()) throw notAllowed('no secret key: give kDt at CREATE or RETRIEVE generateKey first');
        return after(finish(ctx, res, change, 'signature', (s, last) => s.sign(last)), (signature) => {
          change.attrs.set('signature', signed(res, signature));
          staleResult(res, change.attrs);
        });
      },
    },
    {
      name: 'verifySignature', sn: 'vSgn', result: ['verificationResult'],
      run(ctx, res, change) {
        const sig = res.attrs.get('signature');
        if (!(sig instanceof Uint8Array)) throw notAllowed('no signature to verify: UPDATE Sgn first');
        return after(finish(ctx, res, change, 'verificationResult', (s, last) => s.verify(sig, last)), (ok) => void change.attrs.set('verificationResult', verdict(ok)));
      },
    },
    {
      name: 'generateKey', sn: 'gnK', result: ['keyInformation', 'keyData'],
      async run(ctx, res, change) {
        const key = await generateKey(ctx, res, { use: 'signature', algorithm: algorithm(res) });
        let pub: string | undefined;
        try {
          pub = await publicKeyOf(ctx, res, key);
        } catch (e) {
          ctx.host.deleteKey(key);
          throw e;
        }
        change.attrs.set('keyData', key);
        if (pub) change.attrs.set('keyInformation', pub);
        staleResult(res, change.attrs);
        // A verification-only stream ran under the key of kInf.
        ctx.effects.push(() => (res.attrs.get('message') as Accumulator | undefined)?.dropStream());
      },
    },
  ],
  hooks: {
    async create(ctx, res) {
      const alg = algorithm(res);
      const i = SIGNATURES[alg];
      if (!ctx.host.backend.capabilities.signatureAlgorithms.includes(alg)) throw notImplemented(`${i.name} (${alg})`);
      if (i.family !== 'ecdsa') {
        for (const a of ecdsaOnly) if (res.attrs.has(a)) throw badRequest(`${a} applies to ECDSA only, not ${i.name}`);
      }
      await keyAtCreate(ctx, res, { use: 'signature', algorithm: alg }, i);
      checkPublicPoint(res, res.attrs.get('keyInformation'));
      const key = res.key();
      if (key && i.family === 'ecdsa' && !res.attrs.has('keyInformation')) {
        const pub = await publicKeyOf(ctx, res, key);
        if (pub) res.attrs.set('keyInformation', pub);
      }
    },
    update(ctx, res, changes) {
      if (changes.has('keyInformation')) checkPublicPoint(res, changes.get('keyInformation'));
      // A verification-only ECDSA resource streams under the key of kInf: a new kInf restarts it.
      if (changes.has('keyInformation') && !res.key()) ctx.effects.push(() => (res.attrs.get('message') as Accumulator | undefined)?.dropStream());
      // A verification result holds for one signature, message and key: a new verifying key (kInf
      // of a resource without a secret key) makes it stale too.
      if (changes.has('signature') || changes.has('message') || (changes.has('keyInformation') && !res.key())) staleResult(res, changes);
    },
    async stream(ctx, res) {
      if (!hasKey(res)) return undefined;
      const stream = await open(ctx, res);
      const sink: SignatureSink = { tag: 'sig', stream, update: (d) => stream.update(d), abort: () => unawaited(stream.abort()) };
      return sink;
    },
  },
};
