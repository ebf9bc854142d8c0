// Loads the node-gyp addon (native/senv_pcsc.cc) and declares its shape.
// Loading is lazy and fails with PcscUnavailableError naming what to install,
// so that importing senv never needs PC/SC.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { granted } from '../core/permissions.ts';
import { PcscUnavailableError } from './errors.ts';

export interface NativeReaderState {
  reader: string;
  eventState: number;
  atr: Uint8Array;
}

export interface NativeCard {
  transmit(command: Uint8Array, maxResponse?: number): Promise<Uint8Array>;
  reconnect(share: number, protocols: number, initialization: number): Promise<number>;
  beginTransaction(): Promise<void>;
  endTransaction(disposition: number): Promise<void>;
  status(): Promise<{ reader: string; state: number; protocol: number; atr: Uint8Array }>;
  control(code: number, data: Uint8Array, maxResponse?: number): Promise<Uint8Array>;
  disconnect(disposition: number): Promise<void>;
  readonly protocol: number;
  readonly connected: boolean;
}

export interface NativeMonitor {
  listReaders(): Promise<string[]>;
  getStatusChange(states: { reader: string; currentState: number }[], timeoutMs: number): Promise<NativeReaderState[]>;
  /** SCardCancel, sent from a bridge thread (skipped while the last one is under way); never throws. */
  cancel(): void;
  connect(reader: string, share: number, protocols: number): Promise<NativeCard>;
  release(): Promise<void>;
}

export interface NativeAddon {
  Monitor: { establish(): Promise<NativeMonitor> };
  constants: Record<
    | 'SCARD_SHARE_EXCLUSIVE' | 'SCARD_SHARE_SHARED' | 'SCARD_SHARE_DIRECT'
    | 'SCARD_PROTOCOL_T0' | 'SCARD_PROTOCOL_T1' | 'SCARD_PROTOCOL_RAW'
    | 'SCARD_LEAVE_CARD' | 'SCARD_RESET_CARD' | 'SCARD_UNPOWER_CARD' | 'SCARD_EJECT_CARD'
    | 'SCARD_CTL_CODE_BASE' | 'INFINITE',
    number
  >;
  pnpReader: string;
  /**
   * The bridge call whose promise this is no longer keeps its environment
   * alive (it outlived its timeout; a pending call keeps it alive until
   * then, as any does). False when it is no pending call of this environment.
   */
  unrefCall(call: Promise<unknown>): boolean;
  /**
   * At its environment's exit: no wait of that environment starts any more,
   * and the running ones that still keep it alive are cancelled until they
   * returned (for 2 s at most).
   */
  endForExit(): void;
}

const ADDON = 'native/build/Release/senv_pcsc.node';
export const PCSC_INSTALL_HINT =
  'install the PC/SC development files and a compiler (Debian/Ubuntu: apt-get install libpcsclite-dev g++ make python3; ' +
  'Fedora: dnf install pcsc-lite-devel gcc-c++ make), then build the bridge with `npm rebuild onem2m-senv` ' +
  '(npm 12 runs a dependency\'s install script only once approved: `npm install-scripts approve onem2m-senv` first; ' +
  'in a senv checkout: `node scripts/build-native.mjs`); to reach readers, pcscd must be running';

/** What Deno was not granted, as the flags to give. */
class NotGranted extends Error {}

// src/pcsc/ in a checkout, dist/src/pcsc/ once compiled: walk up to the package root.
function findAddon(): string | null {
  // A relative path is the caller's, from the working directory, as for any path in the environment
  // (require() would take it from this module's directory, or "x.node" as a package name).
  if (!granted({ name: 'env', variable: 'SENV_PCSC_ADDON' })) throw new NotGranted('--allow-env=SENV_PCSC_ADDON');
  if (process.env.SENV_PCSC_ADDON) return resolve(process.env.SENV_PCSC_ADDON);
  let dir = dirname(fileURLToPath(import.meta.url));
  const refused: string[] = [];
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, ADDON);
    // A place it may not look is no place it is; if it is found nowhere, every such place is named
    // (one of them is the package root's, where a built addon is).
    if (!granted({ name: 'read', path: candidate })) refused.push(candidate);
    else if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  if (refused.length) throw new NotGranted(`--allow-read=${refused.join(',')}`);
  return null;
}

let cached: NativeAddon | PcscUnavailableError | undefined;

/** The addon, or throws PcscUnavailableError saying what to install. */
export function loadNative(): NativeAddon {
  cached ??= load();
  if (cached instanceof PcscUnavailableError) throw cached;
  return cached;
}

function load(): NativeAddon | PcscUnavailableError {
  // A browser (a bundler's stubs of node: modules let the import succeed): nothing to install or rebuild there.
  if (typeof process !== 'object' || typeof process?.versions?.node !== 'string') {
    return new PcscUnavailableError('the native PC/SC bridge is a Node-API addon: it runs on Node and Deno, not in this runtime (a browser)');
  }
  let path: string | null = null;
  try {
    // Finding it reads the environment and the file system too: Deno refuses either without its permission.
    path = findAddon();
    if (!path) return new PcscUnavailableError(`the native PC/SC bridge is not built: ${PCSC_INSTALL_HINT}`);
    const missing = (['read', 'ffi'] as const).filter((name) => !granted({ name, path: path! })).map((name) => `--allow-${name}=${path}`);
    if (missing.length) throw new NotGranted(missing.join(' '));
    return createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    // Deno refuses a native addon without --allow-ffi: nothing to install or rebuild then. Node
    // appends the require stack on lines of its own: the first line names the cause.
    const where = path ? ` at ${path}` : '';
    if (e instanceof NotGranted) return new PcscUnavailableError(`the native PC/SC bridge${where} needs permission to load: run Deno with ${e.message}`);
    return new PcscUnavailableError(
      ['NotCapable', 'PermissionDenied'].includes((e as Error).name)
        ? `the native PC/SC bridge${where} needs permission to load: run Deno with --allow-ffi, --allow-read and --allow-env`
        : `the native PC/SC bridge${where} cannot be loaded (${String((e as Error).message).split('\n')[0]}); ` +
            `the runtime library may be missing (Debian/Ubuntu: apt-get install libpcsclite1) or the build is stale: ${PCSC_INSTALL_HINT}`,
    );
  }
}

/** True when the bridge can be loaded (it says nothing about pcscd or readers). */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}
