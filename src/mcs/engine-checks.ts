// What McsEngine checks before it serves: the options of create() and rotateMasterKey(), and each
// backend it is given (one engine at a time, its description and capabilities against the TS-0016
// tables, its memory figures), so that a wrong value fails there, named, and not at the first request.
import type { SecureEnvironmentBackend } from '../backends/backend.ts';
import { UNIQUE_ID } from '../backends/checks.ts';
import { ALL_REBOOT_TYPES, CIPHERS, HASHES, RNG_TYPES, SIGNATURES, valuesOf } from '../backends/algorithms.ts';
import { InvalidInputError } from '../core/errors.ts';
import { isBytes, optionsArg, shown, type OptionNames } from '../core/args.ts';
import type { McsEngineOptions } from './engine.ts';
import { memoryFigures } from './handed.ts';
import type { MasterKeyOptions } from './store/master-key.ts';
import { seType as SE_TYPE } from './types/se.ts';

const MASTER_KEY_OPTIONS: OptionNames<MasterKeyOptions> = { masterKey: true, masterKeyFile: true, masterKeyEnv: true };
const OPTIONS: OptionNames<McsEngineOptions> = {
  ...MASTER_KEY_OPTIONS, backends: true, maxDataSize: true, memoryQuota: true, dataDir: true, files: true, rollbackAnchor: true, store: true, clock: true,
};

/** McsEngine.create's options argument: its names known, each of the right kind (checkOptions). */
export function engineOptions(options: McsEngineOptions | null | undefined): McsEngineOptions {
  const o = optionsArg(options, 'McsEngine options', OPTIONS) ?? {};
  checkOptions(o);
  return o;
}

/** rotateMasterKey's options argument: one master key source, of the right kind. */
export function masterKeyOptions(options: MasterKeyOptions | null | undefined): MasterKeyOptions {
  const o = optionsArg(options, 'rotateMasterKey options', MASTER_KEY_OPTIONS) ?? {};
  checkMasterKeyOptions(o);
  return o;
}

/**
 * Backends an open engine hosts (or one being created): a backend is opened once per use and its
 * close() ends every engine's SE on it, so a second engine must not take one another still uses.
 */
const engaged = new WeakSet<SecureEnvironmentBackend>();

/** Refuses a backend instance given twice or used by another open engine: one serves one engine at a time. */
export function refuseEngaged(backends: readonly SecureEnvironmentBackend[]): void {
  const mine = new Set<SecureEnvironmentBackend>();
  backends.forEach((b, i) => {
    if (engaged.has(b) || mine.has(b)) {
      throw new InvalidInputError(`SE backend ${i + 1} (${named(b)}) is ${mine.has(b) ? 'given twice' : 'used by another open McsEngine'}: one backend instance serves one engine at a time (close that engine first, or give another instance)`);
    }
    mine.add(b);
  });
}

/** Takes the backends for an engine being created, refusing as refuseEngaged does. */
export function engage(backends: readonly SecureEnvironmentBackend[]): void {
  refuseEngaged(backends);
  for (const b of backends) engaged.add(b);
}

/** The engine is done with `b` (closed, or never came up): another may take it. */
export function disengage(b: SecureEnvironmentBackend): void {
  engaged.delete(b);
}

/** A backend as a message names it: its unique ID when it has a valid one already (a card's comes at open()). */
function named(b: SecureEnvironmentBackend): string {
  try {
    const id = b.description?.uniqueId;
    return typeof id === 'string' && UNIQUE_ID.test(id) ? `'${id}'` : 'its unique ID not known yet';
  } catch {
    return 'its description unreadable';
  }
}

const enumValues = (name: string) => (SE_TYPE.attributes.find((a) => a.name === name)!.type as { values: readonly number[] }).values;

/**
 * What the engine reads of a backend's description and capabilities, checked once at create (after
 * open(): a card's are known then) against the TS-0016 tables, so that a wrong value fails there,
 * named, and not as every request's 4004, an M2M-SE-ID of 'undefined-…' or an unusable quota.
 */
export function checkBackend(b: SecureEnvironmentBackend): void {
  const d = b.description;
  const c = b.capabilities;
  const fail = (field: string, must: string, got: unknown) => {
    throw new InvalidInputError(`SE backend '${d.uniqueId}': ${field} must be ${must}, got ${shown(got)}`);
  };
  const oneOf = (field: string, v: unknown, values: readonly unknown[], table: string) => {
    if (!values.includes(v)) fail(field, `one of ${values.join(', ')} (${table})`, v);
  };
  const listOf = (field: string, v: unknown, values: readonly unknown[], table: string) => {
    const must = `an array of values of ${table} (${values.join(', ')})`;
    if (!Array.isArray(v)) fail(field, must, v);
    for (const x of v as unknown[]) if (!values.includes(x)) fail(field, must, x);
  };
  const count = (field: string, v: unknown, min: number) => {
    if (!(Number.isSafeInteger(v) && (v as number) >= min)) fail(field, `an integer from ${min}`, v);
  };
  oneOf('description.seType', d.seType, enumValues('SEType'), 'TS-0016 table 9.2-1');
  oneOf('description.securityLevel', d.securityLevel, enumValues('securityLevel'), 'TS-0016 table 9.3-1');
  if (typeof c !== 'object' || c === null) fail('capabilities', 'an object', c);
  listOf('capabilities.cipherAlgorithms', c.cipherAlgorithms, valuesOf(CIPHERS), 'TS-0016 table 9.6-1');
  listOf('capabilities.hashAlgorithms', c.hashAlgorithms, valuesOf(HASHES), 'TS-0016 table 9.8-1');
  listOf('capabilities.signatureAlgorithms', c.signatureAlgorithms, valuesOf(SIGNATURES), 'TS-0016 table 9.9-1');
  listOf('capabilities.rngTypes', c.rngTypes, valuesOf(RNG_TYPES), 'TS-0016 table 9.7-1');
  listOf('capabilities.rebootTypes', c.rebootTypes, ALL_REBOOT_TYPES, 'TS-0016 table 9.4-1');
  count('capabilities.preferredBatchSize', c.preferredBatchSize, 1);
  count('capabilities.maxRandomLength', c.maxRandomLength, 0);
  oneOf('capabilities.keyStorage', c.keyStorage, ['host', 'device'], "'host' or 'device'");
  // Shown by [deviceInfo] as they are, whose attributes are strings.
  for (const f of ['manufacturer', 'model', 'firmwareVersion', 'softwareVersion'] as const) if (typeof d[f] !== 'string') fail(`description.${f}`, 'a string', d[f]);
  if (d.hardwareVersion !== undefined && typeof d.hardwareVersion !== 'string') fail('description.hardwareVersion', 'a string or absent', d.hardwareVersion);
  const sources: unknown = d.rngSources;
  if (typeof sources !== 'object' || sources === null) fail('description.rngSources', 'an object', sources);
  for (const t of c.rngTypes) {
    const said = (sources as Record<number, unknown>)[t];
    if (typeof said !== 'string') fail(`description.rngSources[${t}]`, 'a string saying where that rngType\'s bytes come from', said);
  }
}

/** memoryInfo() at create, where its total becomes the quota: a figure that is no count fails the create, named. */
export async function backendMemory(b: SecureEnvironmentBackend): Promise<{ total: number; available: number }> {
  return memoryFigures(await b.memoryInfo(), (what) => new InvalidInputError(`SE backend '${b.description.uniqueId}': memoryInfo() gave ${what}`));
}

/** The master key options of McsEngine.create and rotateMasterKey. */
function checkMasterKeyOptions(o: MasterKeyOptions): void {
  for (const name of ['masterKeyFile', 'masterKeyEnv'] as const) {
    if (o[name] !== undefined && (typeof o[name] !== 'string' || o[name] === '')) throw new InvalidInputError(`${name} must be a non-empty string`);
  }
  // A name no environment can hold (Node would say to set it, Deno that it needs --allow-env).
  if (o.masterKeyEnv !== undefined && /[=\0]/.test(o.masterKeyEnv)) throw new InvalidInputError('masterKeyEnv must be a variable name, without "=" or NUL');
  if (o.masterKey !== undefined && !isBytes(o.masterKey)) throw new InvalidInputError(`masterKey must be a Uint8Array of 32 bytes, got ${shown(o.masterKey)}`);
  // One source: of two, the one read first would win in silence, and the caller may believe the other in force.
  const given = (Object.keys(MASTER_KEY_OPTIONS) as (keyof MasterKeyOptions)[]).filter((name) => o[name] !== undefined);
  if (given.length > 1) throw new InvalidInputError(`give one master key, not ${given.join(' and ')}`);
}

/** Options of the wrong kind fail here, named, rather than as a TypeError at the first request. */
function checkOptions(o: McsEngineOptions): void {
  const bytes = (v: unknown, what: string, min: number) => {
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= min)) throw new InvalidInputError(`${what} must be a number of bytes (an integer from ${min})`);
  };
  bytes(o.memoryQuota, 'memoryQuota', 0);
  bytes(o.maxDataSize, 'maxDataSize', 1);
  if (o.backends !== undefined && !(Array.isArray(o.backends) && o.backends.every((b) => typeof (b as Partial<SecureEnvironmentBackend> | null)?.open === 'function'))) {
    throw new InvalidInputError('backends must be an array of SE backends (SoftwareBackend, PcscBackend, or your own)');
  }
  if (o.dataDir !== undefined && (typeof o.dataDir !== 'string' || o.dataDir === '')) throw new InvalidInputError('dataDir must be a directory path (a non-empty string)');
  if (o.clock !== undefined && typeof o.clock !== 'function') throw new InvalidInputError('clock must be a function returning milliseconds');
  checkMasterKeyOptions(o);
  // Without a data directory nothing is sealed: a caller who gave a key believes otherwise (in a browser above all).
  if (o.dataDir === undefined && (o.masterKey ?? o.masterKeyFile ?? o.masterKeyEnv) !== undefined) {
    throw new InvalidInputError('masterKey, masterKeyFile and masterKeyEnv seal a data directory: give dataDir too (without one the state is in memory and nothing is sealed)');
  }
  const has = (v: unknown, methods: string[]) => typeof v === 'object' && v !== null && methods.every((m) => typeof (v as Record<string, unknown>)[m] === 'function');
  if (o.files !== undefined && !has(o.files, ['read', 'append', 'writeDurable', 'createLock', 'lockHeld', 'rename', 'truncate', 'remove', 'mkdir', 'syncDir'])) throw new InvalidInputError('files must be a Files implementation (src/mcs/store/files.ts)');
  if (o.store !== undefined && !has(o.store, ['uniqueId', 'load', 'put', 'append', 'remove', 'close'])) throw new InvalidInputError('store must be a Persistence implementation (src/mcs/persist.ts)');
  if (o.rollbackAnchor !== undefined) {
    if (!has(o.rollbackAnchor, ['read', 'write']) || ![undefined, true, false].includes(o.rollbackAnchor.trustOnFirstUse)) {
      throw new InvalidInputError('rollbackAnchor must be an object with read() and write(head), and trustOnFirstUse a boolean if given');
    }
    // Anchoring nothing would look like protection: a caller who gave one believes the directory guarded.
    if (o.dataDir === undefined || o.store !== undefined) throw new InvalidInputError('rollbackAnchor keeps the head of a data directory\'s journal: give dataDir (and no store of your own)');
  }
}
