// <rand> (TS-0016 clause 7.5.2) with <generateRand>: requestedDataSize bytes
// from the RNG the rngType asks for; a backend without that RNG refuses the
// <rand> at CREATE rather than substituting another source.
import type { RngType } from '../../backends/backend.ts';
import { RNG_TYPES, valuesOf } from '../../backends/algorithms.ts';
import { McsError, RSC } from '../rsc.ts';
import type { Context } from '../context.ts';
import type { ResourceType } from '../schema.ts';
import { notAllowed, notImplemented } from './common.ts';
import { checked } from '../handed.ts';

export const randType: ResourceType = {
  ty: 20007,
  name: 'rand',
  root: 'senv:Rnd',
  longRoot: 'senv:rand',
  common: ['et', 'acpi', 'cr'],
  acpiFromParent: true,
  attributes: [
    { name: 'randomData', sn: 'rndD', access: 'RO', create: 'NP', update: 'NP', type: { kind: 'bytes' }, secret: true },
    { name: 'rngType', sn: 'rgT', access: 'WO', create: 'M', update: 'NP', type: { kind: 'enum', values: valuesOf(RNG_TYPES), table: 'table 9.7-1' } },
    { name: 'requestedDataSize', sn: 'Dsz', access: 'RW', create: 'O', update: 'O', type: { kind: 'uint' } },
  ],
  children: [],
  virtuals: [
    {
      name: 'generateRand', sn: 'gnR', result: ['randomData'],
      async run(ctx, res, change) {
        const size = res.attrs.get('requestedDataSize') as number | undefined;
        if (size === undefined) throw notAllowed('set Dsz (requestedDataSize) first');
        // Checked here too: the limits may have shrunk since Dsz was written (another maxDataSize after a restart).
        checkSize(ctx, res.attrs);
        change.attrs.set('randomData', checked(await ctx.host.backend.random(res.attrs.get('rngType') as RngType, size), 'random bytes', size));
      },
    },
  ],
  hooks: {
    async create(ctx, res) {
      const type = res.attrs.get('rngType') as RngType;
      if (!ctx.host.backend.capabilities.rngTypes.includes(type)) throw notImplemented(`rngType ${type} (${RNG_TYPES[type]})`);
      checkSize(ctx, res.attrs);
    },
    update(ctx, _res, changes) {
      checkSize(ctx, changes);
    },
  },
};

/** Dsz within what the backend generates at once and what the engine holds as one value (randomData). */
function checkSize(ctx: Context, values: Map<string, unknown>): void {
  const max = Math.min(ctx.host.backend.capabilities.maxRandomLength, ctx.maxData);
  const size = values.get('requestedDataSize') as number | undefined;
  if (size !== undefined && size > max) throw new McsError(RSC.NOT_ACCEPTABLE, `Dsz (requestedDataSize) exceeds ${max} bytes`);
}
