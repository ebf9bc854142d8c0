// <cipher> (TS-0016 clause 7.5.1) with its virtual children <encrypt>,
// <decrypt>, <generateKey> and its <algorithmSpecificParameter> child.
//
// sensitiveData arrives in UPDATE chunks (7.5.1.1.3) that are appended and
// streamed to the backend as they come. Which direction the chunks are for
// is only known at RETRIEVE, so the stream is opened for the direction of the
// previous operation (encrypt at first); the other direction replays the
// held data, with the same result.
import type { CipherAlgorithm, CipherParams, CipherStream, KeyHandle, MaybePromise } from '../../backends/backend.ts';
import { CIPHERS, valuesOf } from '../../backends/algorithms.ts';
import { Borrowed, type Change } from '../change.ts';
import type { Context } from '../context.ts';
import type { Resource } from '../resource.ts';
import type { Accumulator } from '../accumulator.ts';
import { badRequest } from '../rsc.ts';
import type { ResourceType, StreamSink } from '../schema.ts';
import { dataError, keyData, keyExportable, notAllowed, notImplemented } from './common.ts';
import { generateKey, keyAtCreate, requireKey } from './keys.ts';
import { after, mapFailure, unawaited } from '../settle.ts';
import { checked, opened } from '../handed.ts';

export const CIPHER_TY = 20002;
export const ALG_PARAM_TY = 20001;

type Direction = 'encrypt' | 'decrypt';
interface CipherSink extends StreamSink { readonly stream: CipherStream }

const algorithm = (res: Resource) => res.attrs.get('algorithm') as CipherAlgorithm;
/** The <algorithmSpecificParameter> child (at most one, maxPerParent). */
const parametersChild = (res: Resource) => [...res.children.values()].find((c) => c.ty === ALG_PARAM_TY);

/** The parameters from the <algorithmSpecificParameter> child, checked against what the algorithm needs. */
function cipherParams(res: Resource): CipherParams | undefined {
  const info = CIPHERS[algorithm(res)];
  const p = parametersChild(res);
  const params: CipherParams = {};
  const iv = p?.bytes('initialVector'), nonce = p?.bytes('nonce'), aad = p?.bytes('associatedData');
  if (info.mode === 'cbc') {
    if (!iv) return undefined;
    params.iv = iv;
  } else {
    if (!nonce) return undefined;
    params.nonce = nonce;
    if (aad) params.aad = aad;
  }
  return params;
}

interface Inputs { key: KeyHandle; params: CipherParams }

/** The key and the parameters an operation needs, or 4005 naming what is missing. */
function inputs(res: Resource): Inputs {
  const key = requireKey(res);
  const params = cipherParams(res);
  if (!params) {
    const need = CIPHERS[algorithm(res)].mode === 'cbc' ? 'iV (16 bytes)' : 'nc (12 bytes)';
    // A child that is there lacks the value: it is set there (a second child is refused, 4105).
    const child = parametersChild(res);
    throw notAllowed(child ? `set ${need} in the algorithmSpecificParameter '${child.rn}' first` : `create an algorithmSpecificParameter child with ${need} first`);
  }
  return { key, params };
}

function open(ctx: Context, res: Resource, direction: Direction, { key, params }: Inputs = inputs(res)): MaybePromise<CipherStream> {
  return after(ctx.host.backend.cipher(algorithm(res), key, direction, params), (s) => opened(s, 'cipher stream'));
}

function operation(direction: Direction) {
  return (ctx: Context, res: Resource, change: Change): MaybePromise<void> => {
    const data = res.attrs.get('sensitiveData') as Accumulator | undefined;
    // An operation that cannot start (4005: no key or parameters) changes nothing: the
    // message stays for the next try. A stream already open for it had them.
    const needs = data?.streams(direction) ? undefined : inputs(res);
    // Once started, whether it succeeds or not, the operation ends the message and sets the direction of the next stream.
    change.consumed = data !== undefined;
    change.hint = direction;
    const taken = data?.take(direction);
    // No stale or partial result stays behind a failed operation.
    const failed = (e: unknown) => {
      data?.dropStream();
      if (res.attrs.has('calculatedData')) change.attrs.set('calculatedData', null);
      return dataError(e);
    };
    return mapFailure(() => {
      // A message replayed, or none: the backend's output is taken over, all of it at most the message and a tag or padding block.
      if (!data || !taken) {
        return after(after(open(ctx, res, direction, needs), (s) => s.final(data?.bytes())), (out) => void change.attrs.set('calculatedData', checked(out, 'cipher output', 0, (data?.size ?? 0) + 32)));
      }
      // The stream's output so far is in the accumulator; the rest goes behind it.
      const room = data.room(taken.rest.length + 32);
      return after((taken.sink as CipherSink).stream.final(taken.rest, room), (out) => {
        data.keep(out, room);
        change.attrs.set('calculatedData', new Borrowed(data.output()));
      });
    }, failed);
  };
}

export const cipherType: ResourceType = {
  ty: CIPHER_TY,
  name: 'cipher',
  root: 'senv:Cph',
  longRoot: 'senv:cipher',
  common: ['et', 'acpi', 'cr'],
  acpiFromParent: true,
  attributes: [
    { name: 'sensitiveData', sn: 'msg', access: 'RW', create: 'O', update: 'O', type: { kind: 'bytes' }, secret: true, append: true, maxFrom: 'maxByteSize' },
    // RW in table 7.5.1.0-2: an UPDATE may set it to 0 to discard the data held (see docs/mcs.md).
    { name: 'currentByteSize', sn: 'cbs', access: 'RW', create: 'O', update: 'O', type: { kind: 'uint' }, sizeOf: 'sensitiveData' },
    // RO in the table yet mandatory at CREATE: set once at CREATE (spec trap 10).
    { name: 'maxByteSize', sn: 'mbs', access: 'WO', create: 'M', update: 'NP', type: { kind: 'uint' } },
    { name: 'algorithm', sn: 'Calg', access: 'WO', create: 'M', update: 'NP', type: { kind: 'enum', values: valuesOf(CIPHERS), table: 'table 9.6-1' } },
    keyData,
    keyExportable,
    { name: 'calculatedData', sn: 'cD', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'bytes' }, secret: true },
  ],
  children: [ALG_PARAM_TY],
  virtuals: [
    { name: 'encrypt', sn: 'Enc', result: ['calculatedData'], run: operation('encrypt') },
    { name: 'decrypt', sn: 'Dec', result: ['calculatedData'], run: operation('decrypt') },
    {
      name: 'generateKey', sn: 'gnK', result: ['keyData'],
      run: async (ctx, res, change) => {
        change.attrs.set('keyData', await generateKey(ctx, res, { use: 'cipher', algorithm: algorithm(res) }));
        ctx.effects.push(() => (res.attrs.get('sensitiveData') as Accumulator | undefined)?.dropStream());
      },
    },
  ],
  hooks: {
    async create(ctx, res) {
      const alg = algorithm(res);
      if (!ctx.host.backend.capabilities.cipherAlgorithms.includes(alg)) throw notImplemented(`${CIPHERS[alg].name} (${alg})`);
      byteSizeReset(res.attrs);
      await keyAtCreate(ctx, res, { use: 'cipher', algorithm: alg }, CIPHERS[alg]);
    },
    update(_ctx, _res, changes) {
      // Discarding the data is the engine's null for the append attribute.
      if (byteSizeReset(changes)) changes.set('sensitiveData', null);
    },
    async stream(ctx, res) {
      if (!res.key() || !cipherParams(res)) return undefined;
      const tag = (res.hint ?? 'encrypt') as Direction;
      const stream = await open(ctx, res, tag);
      const sink: CipherSink = { tag, stream, output: true, update: (d, into) => stream.update(d, into), abort: () => unawaited(stream.abort()) };
      return sink;
    },
  },
};

/**
 * currentByteSize follows the data held; a client may only write 0, which
 * discards the data (the start of a new message). Takes it out of the
 * values (it is never stored) and tells whether it was there.
 */
function byteSizeReset(values: Map<string, unknown>): boolean {
  if (!values.has('currentByteSize')) return false;
  if (values.get('currentByteSize') !== 0) throw badRequest('cbs (currentByteSize) can only be set to 0, which discards the data held');
  // msg null, or an empty chunk, asks for the same discard; data would be kept and discarded at once.
  const data = values.get('sensitiveData') as Accumulator | Uint8Array | null | undefined;
  if (data && (data instanceof Uint8Array ? data.length : data.size) > 0) {
    throw badRequest('cbs (currentByteSize) 0 and msg (sensitiveData) data in one request contradict each other');
  }
  values.delete('currentByteSize');
  return true;
}
