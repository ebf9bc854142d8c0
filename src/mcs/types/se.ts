// <SE> (TS-0016 clause 7.3): an originator registers with a hosted SE by
// creating one, naming the SE by m2mSeID (clause 7.2.2). The SE fills in
// SEType and the list of resource types it supports, refuses a security level
// it does not provide, and gives the registration its [deviceInfo], [memory]
// and one [SEReboot] per reset type.
import { badRequest } from '../rsc.ts';
import type { ResourceType } from '../schema.ts';
import { deviceInfoType, memoryType, seRebootType } from './mgmt.ts';

export const SE_TY = 20011;

export const seType: ResourceType = {
  ty: SE_TY,
  name: 'SE',
  root: 'senv:Senv',
  longRoot: 'senv:SE',
  common: ['acpi', 'cr'],
  attributes: [
    // O/O in table 7.3.0-3 but RO in table 7.3.0-2: the SE knows what it is, and a client may state it.
    { name: 'SEType', sn: 'seT', access: 'RO', create: 'O', update: 'O', type: { kind: 'enum', values: [1, 2, 3, 4], table: 'table 9.2-1' }, stated: true },
    { name: 'm2mSeID', sn: 'sID', access: 'WO', create: 'M', update: 'NP', type: { kind: 'string' } },
    { name: 'securityLevel', sn: 'seL', access: 'WO', create: 'M', update: 'NP', type: { kind: 'enum', values: [1, 2, 3], table: 'table 9.3-1' } },
    { name: 'supportedResourceType', sn: 'srt', access: 'RW', create: 'O', update: 'O', type: { kind: 'uints', unique: true }, always: true },
    { name: 'e2eSecInfo', sn: 'esi', access: 'RW', create: 'O', update: 'O', type: { kind: 'any', object: 'm2m:e2eSecInfo' } },
    { name: 'hostedCSELink', sn: 'hcl', access: 'RW', create: 'O', update: 'O', type: { kind: 'string' } },
    { name: 'hostedAELinks', sn: 'hal', access: 'RW', create: 'O', update: 'O', type: { kind: 'ids' } },
  ],
  // Table 7.3.0-1's, by resource type; <secureConnection> and <identity> are not implemented yet (registry.ts).
  children: [1, 13, 20010, 20009, 20002, 20007, 20004, 20012, 20008, 20005],
  hooks: {
    async create(ctx, res) {
      const host = ctx.host;
      if (res.attrs.get('m2mSeID') !== host.seId) throw badRequest('sID (m2mSeID) must be the M2M-SE-ID the request is addressed to');
      const level = host.backend.description.securityLevel;
      if (res.attrs.get('securityLevel') !== level) throw badRequest(`seL (securityLevel): this SE provides security level ${level}`);
      checkTypes(host.supportedTypes, res.attrs);
      res.attrs.set('SEType', host.backend.description.seType);
      if (!res.attrs.has('supportedResourceType')) res.attrs.set('supportedResourceType', [...host.supportedTypes]);
      await host.systemChild(ctx, res, deviceInfoType, {});
      await host.systemChild(ctx, res, memoryType, {});
      for (const rebootType of host.backend.capabilities.rebootTypes) {
        await host.systemChild(ctx, res, seRebootType, { rebootType }, rebootType === 1 ? 'coldReset' : 'warmReset');
      }
    },
    update(ctx, _res, changes) {
      checkTypes(ctx.host.supportedTypes, changes);
    },
  },
};

/** supportedResourceType may narrow what can be created under this registration, never widen it. */
function checkTypes(supported: readonly number[], values: Map<string, unknown>): void {
  const srt = values.get('supportedResourceType') as number[] | undefined;
  const extra = srt?.find((t) => !supported.includes(t));
  if (extra !== undefined) throw badRequest(`srt (supportedResourceType): ${extra} is not supported by this SE`);
}
