// <algorithmSpecificParameter> (TS-0016 clause 7.5.1.5): IV, nonce and
// associated data of its parent <cipher>. It inherits the parent's access
// control and has no accessControlPolicyIDs of its own (the clause text wins
// over its table). Lengths are checked here, when they are written, against
// the parent's algorithm; any change drops the parent's speculative stream
// (opened with the old parameters) once it took effect.
import type { CipherAlgorithm } from '../../backends/backend.ts';
import { CIPHERS } from '../../backends/algorithms.ts';
import type { Resource } from '../resource.ts';
import type { Accumulator } from '../accumulator.ts';
import { badRequest } from '../rsc.ts';
import type { ResourceType } from '../schema.ts';
import { ALG_PARAM_TY } from './cipher.ts';

function check(parent: Resource, values: Map<string, unknown>): void {
  const info = CIPHERS[parent.attrs.get('algorithm') as CipherAlgorithm];
  const iv = values.get('initialVector') as Uint8Array | undefined;
  const nonce = values.get('nonce') as Uint8Array | undefined;
  const aad = values.get('associatedData');
  if (info.mode === 'cbc') {
    if (iv && iv.length !== 16) throw badRequest(`iV (initialVector) must be 16 bytes for ${info.name}`);
    if (nonce || aad) throw badRequest(`nc and aD do not apply to ${info.name}`);
  } else {
    if (nonce && nonce.length !== info.nonceLength) throw badRequest(`nc (nonce) must be ${info.nonceLength} bytes for ${info.name}`);
    if (iv) throw badRequest(`iV does not apply to ${info.name}`);
  }
}

function dropParentStream(res: Resource): void {
  (res.parent?.attrs.get('sensitiveData') as Accumulator | undefined)?.dropStream();
}

export const algorithmSpecificParameterType: ResourceType = {
  ty: ALG_PARAM_TY,
  name: 'algorithmSpecificParameter',
  root: 'senv:algP',
  longRoot: 'senv:algorithmSpecificParameter',
  common: ['et', 'cr'],
  attributes: [
    { name: 'initialVector', sn: 'iV', access: 'RW', create: 'O', update: 'O', type: { kind: 'bytes' } },
    { name: 'nonce', sn: 'nc', access: 'RW', create: 'O', update: 'O', type: { kind: 'bytes' } },
    { name: 'associatedData', sn: 'aD', access: 'RW', create: 'O', update: 'O', type: { kind: 'bytes' } },
    // TLS exporter labels of table 9.5-1: kept for <secureConnection> key export; AES modes ignore them.
    { name: 'label', sn: 'Clab', access: 'RW', create: 'O', update: 'O', type: { kind: 'enum', values: [1, 2], table: 'table 9.5-1' } },
  ],
  children: [],
  maxPerParent: 1,
  hooks: {
    async create(ctx, res) {
      check(res.parent!, res.attrs);
      ctx.effects.push(() => dropParentStream(res));
    },
    update(ctx, res, changes) {
      check(res.parent!, changes);
      ctx.effects.push(() => dropParentStream(res));
    },
    removed(_ctx, res) {
      dropParentStream(res);
    },
  },
};
