// <hash> (TS-0016 clause 7.5.3) with <calculateHash>. message UPDATEs append
// and stream into the backend's digest as they arrive.
import type { DigestStream, HashAlgorithm } from '../../backends/backend.ts';
import { HASHES, valuesOf } from '../../backends/algorithms.ts';
import type { Context } from '../context.ts';
import type { Resource } from '../resource.ts';
import type { Accumulator } from '../accumulator.ts';
import type { ResourceType, StreamSink } from '../schema.ts';
import { dataError, message, notImplemented } from './common.ts';
import { after, mapFailure, unawaited } from '../settle.ts';
import { checked, opened } from '../handed.ts';

interface DigestSink extends StreamSink { readonly stream: DigestStream }

const algorithm = (res: Resource) => res.attrs.get('algorithm') as HashAlgorithm;
const digestStream = (ctx: Context, res: Resource) => after(ctx.host.backend.digest(algorithm(res)), (s) => opened(s, 'digest stream'));

export const hashType: ResourceType = {
  ty: 20004,
  name: 'hash',
  root: 'senv:Hsh',
  longRoot: 'senv:hash',
  common: ['et', 'acpi', 'cr'],
  acpiFromParent: true,
  attributes: [
    { name: 'algorithm', sn: 'Halg', access: 'WO', create: 'M', update: 'NP', type: { kind: 'enum', values: valuesOf(HASHES), table: 'table 9.8-1' } },
    message,
    // Sealed at rest like the message it digests: a digest of a low-entropy message gives the message away.
    { name: 'hashValue', sn: 'Hv', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'bytes' }, secret: true },
  ],
  children: [],
  virtuals: [
    {
      name: 'calculateHash', sn: 'cHsh', result: ['hashValue'],
      run(ctx, res, change) {
        const data = res.attrs.get('message') as Accumulator | undefined;
        change.consumed = data !== undefined;
        const taken = data?.take('digest');
        return mapFailure(() => after(
          taken ? (taken.sink as DigestSink).stream.final(taken.rest) : after(digestStream(ctx, res), (s) => s.final(data?.bytes())),
          (digest) => void change.attrs.set('hashValue', checked(digest, 'a digest', HASHES[algorithm(res)].outputLength)),
        ), dataError);
      },
    },
  ],
  hooks: {
    async create(ctx, res) {
      const alg = algorithm(res);
      if (!ctx.host.backend.capabilities.hashAlgorithms.includes(alg)) throw notImplemented(`${HASHES[alg].name} (${alg})`);
    },
    async stream(ctx, res) {
      const stream = await digestStream(ctx, res);
      const sink: DigestSink = { tag: 'digest', stream, update: (d) => stream.update(d), abort: () => unawaited(stream.abort()) };
      return sink;
    },
  },
};
