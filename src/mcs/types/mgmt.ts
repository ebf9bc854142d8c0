// The <mgmtObj> children an <SE> carries (TS-0016 table 7.3.0-1): [deviceInfo]
// and [memory] of TS-0001 annex D, maintained by the SE from what its backend
// reports (memory: the quota of an SE whose data the host keeps and what is
// left of it, src/mcs/usage.ts), and [SEReboot] (clause 7.3.1), one per reset
// type the backend offers. Writing SEReboot = true reboots the SE once the
// UPDATE took effect: its open streams are dropped and the backend reruns its
// start-up checks (the software SE: the core's self test); resources
// persist, as on a card.
import type { RebootType } from '../../backends/backend.ts';
import { ALL_REBOOT_TYPES } from '../../backends/algorithms.ts';
import type { Context } from '../context.ts';
import type { Resource } from '../resource.ts';
import type { ResourceType } from '../schema.ts';
import { notImplemented } from './common.ts';
import { memoryFigures } from '../handed.ts';

/** <mgmtObj>: [deviceInfo] and [memory] share it (the SE keeps them); [SEReboot] has a type of its own. */
export const MGMT_TY = 13;
const RO = { access: 'RO', create: 'NP', update: 'NP' } as const;

export const deviceInfoType: ResourceType = {
  ty: MGMT_TY,
  name: 'deviceInfo',
  root: 'm2m:dvi',
  longRoot: 'm2m:deviceInfo',
  common: ['acpi', 'cr'],
  attributes: [
    { name: 'mgmtDefinition', sn: 'mgd', ...RO, type: { kind: 'uint' } },
    { name: 'deviceLabel', sn: 'dlb', ...RO, type: { kind: 'string' } },
    { name: 'manufacturer', sn: 'man', ...RO, type: { kind: 'string' } },
    { name: 'model', sn: 'mod', ...RO, type: { kind: 'string' } },
    { name: 'deviceType', sn: 'dty', ...RO, type: { kind: 'string' } },
    { name: 'fwVersion', sn: 'fwv', ...RO, type: { kind: 'string' } },
    { name: 'swVersion', sn: 'swv', ...RO, type: { kind: 'string' } },
    { name: 'hwVersion', sn: 'hwv', ...RO, type: { kind: 'string' } },
    // Where random bytes come from, per rngType: a software SE has no physical RNG and says so here.
    { name: 'description', sn: 'dc', ...RO, type: { kind: 'string' } },
  ],
  children: [],
  maxPerParent: 1,
  systemOnly: true,
  hooks: {
    async create(ctx, res) {
      describeDevice(ctx, res);
    },
    async retrieve(ctx, res) {
      describeDevice(ctx, res);
    },
  },
};

/**
 * The device as its backend describes it now, not as it was at registration:
 * a card's new firmware or ATR, or a newer senv over an old data directory
 * (whose records may lack an attribute added since), shows at the next RETRIEVE.
 */
function describeDevice(ctx: Context, res: Resource): void {
  const d = ctx.host.backend.description;
  const rng = Object.entries(d.rngSources).map(([t, s]) => `rngType ${t}: ${s}`).join('; ');
  for (const [k, v] of Object.entries({
    mgmtDefinition: 1007, deviceLabel: ctx.host.seId, manufacturer: d.manufacturer, model: d.model,
    deviceType: `SEType ${d.seType}, security level ${d.securityLevel}`, fwVersion: d.firmwareVersion,
    swVersion: d.softwareVersion, hwVersion: d.hardwareVersion ?? 'unknown', description: rng,
  })) res.attrs.set(k, v);
}

export const memoryType: ResourceType = {
  ty: MGMT_TY,
  name: 'memory',
  root: 'm2m:mem',
  longRoot: 'm2m:memory',
  common: ['acpi', 'cr'],
  attributes: [
    { name: 'mgmtDefinition', sn: 'mgd', ...RO, type: { kind: 'uint' } },
    { name: 'memAvailable', sn: 'mma', ...RO, type: { kind: 'uint' } },
    { name: 'memTotal', sn: 'mmt', ...RO, type: { kind: 'uint' } },
  ],
  children: [],
  maxPerParent: 1,
  systemOnly: true,
  hooks: {
    async create(_ctx, res) {
      res.attrs.set('mgmtDefinition', 1003);
    },
    async retrieve(ctx, res) {
      const { host } = ctx;
      // used exceeds the quota only when a data directory was opened with a smaller quota than it holds.
      const m = host.quota === undefined ? memoryFigures(await host.backend.memoryInfo()) : { total: host.quota, available: Math.max(0, host.quota - host.used) };
      res.attrs.set('memAvailable', m.available);
      res.attrs.set('memTotal', m.total);
    },
  },
};

export const seRebootType: ResourceType = {
  ty: 20010,
  name: 'SEReboot',
  root: 'senv:Srbt',
  longRoot: 'senv:SEReboot',
  common: ['et', 'acpi', 'lbl', 'cr'],
  attributes: [
    // WO with the fixed value "seReboot" (table 7.3.1-2): a client creating an [SEReboot] may give it.
    { name: 'mgmtDefinition', sn: 'mgd', access: 'WO', create: 'O', update: 'NP', type: { kind: 'string', values: ['seReboot'] } },
    // TS-0004's short name (TS-0016 clause 10.1 reuses TS-0004's for attributes it does not list).
    { name: 'objectIDs', sn: 'obis', access: 'WO', create: 'O', update: 'NP', type: { kind: 'ids' } },
    { name: 'objectPaths', sn: 'obps', access: 'WO', create: 'O', update: 'NP', type: { kind: 'ids' } },
    { name: 'description', sn: 'dc', access: 'RW', create: 'O', update: 'O', type: { kind: 'string' } },
    // RO in table 7.3.1-2 yet mandatory at CREATE: set once at CREATE.
    { name: 'rebootType', sn: 'rbT', access: 'WO', create: 'M', update: 'NP', type: { kind: 'enum', values: ALL_REBOOT_TYPES, table: 'table 9.4-1' } },
    // An action: writing true reboots; it reads false again afterwards.
    { name: 'SEReboot', sn: 'rb', access: 'RW', create: 'O', update: 'O', type: { kind: 'bool' }, always: true },
  ],
  // Table 7.3.1-1: <subscription> and <semanticDescriptor>, neither implemented (registry.ts).
  children: [23, 24],
  hooks: {
    async create(ctx, res) {
      const type = res.attrs.get('rebootType') as RebootType;
      if (!ctx.host.backend.capabilities.rebootTypes.includes(type)) throw notImplemented(`rebootType ${type}`);
      res.attrs.set('mgmtDefinition', 'seReboot');
      // Assigning true triggers the reboot (clause 7.3.1), at CREATE as at UPDATE; rb reads false again.
      const now = res.attrs.get('SEReboot') === true;
      res.attrs.set('SEReboot', false);
      if (now) rebootAfter(ctx, res);
    },
    update(ctx, res, changes) {
      if (changes.get('SEReboot') !== true) return;
      changes.set('SEReboot', false);
      rebootAfter(ctx, res);
    },
  },
};

/** Reboots once the request took effect. */
function rebootAfter(ctx: Context, res: Resource): void {
  ctx.effects.push(() => ctx.host.reboot(res.attrs.get('rebootType') as RebootType));
}
