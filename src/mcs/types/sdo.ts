// <sensitiveDataObject> (TS-0016 clause 7.4): sensitive data kept by the SE
// for its creator. currentByteSize and creator are computed by the SE (RO),
// although table 7.4.1-2 marks them mandatory at CREATE: a client need not
// send them, and one that does is served when it states the true values (cbs
// the data's byte size, cr the originator, or null as TS-0004 asks). A backend
// with an objectStore keeps the data itself (a card: PUT DATA / GET DATA); the
// host then holds only its size.
import type { Context } from '../context.ts';
import { checked } from '../handed.ts';
import { DeviceData, type Resource } from '../resource.ts';
import { CREATOR, type ResourceType } from '../schema.ts';

async function store(ctx: Context, res: Resource, values: Map<string, unknown>): Promise<void> {
  // No data, however it was sent (msg "" or an empty array), is held as none: no msg, cbs 0.
  const given = values.get('sensitiveData');
  if (given instanceof Uint8Array && given.length === 0) {
    if (values === res.attrs) values.delete('sensitiveData');
    else values.set('sensitiveData', null);
  }
  const device = ctx.host.backend.objectStore;
  if (!device || !values.has('sensitiveData')) return;
  const data = values.get('sensitiveData');
  if (data instanceof Uint8Array) {
    try {
      await device.write(res.ri, data);
      values.set('sensitiveData', new DeviceData(data.length));
    } finally {
      data.fill(0);
    }
  } else if (res.attrs.get('sensitiveData') instanceof DeviceData) await device.remove(res.ri);
}

export const sensitiveDataObjectType: ResourceType = {
  ty: 20009,
  name: 'sensitiveDataObject',
  root: 'senv:Sdo',
  longRoot: 'senv:sensitiveDataObject',
  common: ['acpi'],
  attributes: [
    // M at CREATE in table 7.4.1-2: the originator's own ID is served as null is (TS-0004).
    { ...CREATOR, create: 'O', stated: true },
    // M at CREATE in table 7.4.1-2, RO in table 7.4.1-1: a client built from either table is served.
    { name: 'currentByteSize', sn: 'cbs', access: 'RO', create: 'O', update: 'NP', type: { kind: 'uint' }, sizeOf: 'sensitiveData', stated: true },
    { name: 'sensitiveData', sn: 'msg', access: 'RW', create: 'O', update: 'O', type: { kind: 'bytes' }, secret: true },
  ],
  children: [],
  hooks: {
    create: (ctx, res) => store(ctx, res, res.attrs),
    update: (ctx, res, changes) => store(ctx, res, changes),
    async retrieve(ctx, res) {
      const held = res.attrs.get('sensitiveData');
      if (!(held instanceof DeviceData)) return;
      // One of the wrong length, refused, is zeroized there: nothing of the device's secret is left behind.
      return new Map([['sensitiveData', checked(await ctx.host.backend.objectStore!.read(res.ri, held.size), 'sensitive data', held.size)]]);
    },
    async delete(ctx, res) {
      if (res.attrs.get('sensitiveData') instanceof DeviceData) await ctx.host.backend.objectStore!.remove(res.ri);
    },
  },
};
