// The published declarations (dist/) as consumers type-check them: a Node
// project with @types/node and no DOM lib, a browser project without
// @types/node, each with skipLibCheck off, under node16 and bundler
// resolution. Needs the build (npm test builds first).
import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../', import.meta.url));

const CONSUMER = `
import { McsEngine, gcm, sha256, ecdsa, aesKey, initSync, type Bytes, type McsClient, type McsRequest, type McsResponse, type McsResource, type Persistence, type PersistedSe, type PersistedResource } from ${JSON.stringify(join(root, 'dist/src/index.js'))};
initSync();
const tag: Uint8Array = gcm(aesKey(new Uint8Array(16)), new Uint8Array(12)).encrypt(sha256(new Uint8Array(0)));
const e = ecdsa('P-256');
const ok: boolean = e.verify(e.sign(tag, e.keygen().secretKey), tag, e.getPublicKey(e.keygen().secretKey));
// An options argument is an object, null or left out (README).
const compressed: Bytes = e.getPublicKey(e.keygen().secretKey, null);
const engine: Promise<McsEngine> = McsEngine.create(null);
export const answer: Promise<McsResponse> = engine.then((m) => m.send({ op: 2, to: m.seIds[0]!, fr: 'C1', rqi: '1' }, null));
// Every request parameter docs/mcs.md "Primitives" lists.
const request: McsRequest = { op: 2, to: 'se/hash', fr: 'C1', rqi: '2', rvi: '4', rt: { rtv: 3 }, rcn: 1, ot: '20250101T000000', rqet: 5000 };
// Lists may be readonly (as const): senv copies what it is given.
const rules = [{ originators: ['C1', 'C2'], operations: 3 }] as const;
export const grant = (c: McsClient) => c.accessControlPolicy({ privileges: rules, selfPrivileges: rules });
export const noBackends = McsEngine.create({ backends: [] as const });
export { ok, compressed, request };
// The types a consumer is handed, by name: a resource object of McsClient, a store's arguments.
export const drop = (r: McsResource) => r.delete();
export const observer: Persistence = {
  uniqueId: async () => 'u', load: async (se: PersistedSe) => void se.seId, remove: async () => undefined, close: async () => undefined,
  put: async (se, res: PersistedResource) => void [se.backend.description.seType, res.ri, res.ty, res.attrs.size, res.parent?.rn],
  append: async (_se, res, attr, chunk) => void [res.children.size, attr, chunk.length],
};
`;

// Fresh results are arrays over an ArrayBuffer, which the DOM's BufferSource takes (TypeScript 5.7 made
// Uint8Array generic: a plain Uint8Array is Uint8Array<ArrayBufferLike>, which it does not).
const DOM_CONSUMER = `
import * as senv from ${JSON.stringify(join(root, 'dist/src/index.js'))};
export const digest: Promise<ArrayBuffer> = crypto.subtle.digest('SHA-256', senv.sha256(new Uint8Array(0)));
export const key: Promise<CryptoKey> = crypto.subtle.importKey('raw', senv.randomBytes(32), 'HKDF', false, ['deriveBits']);
export const blob: Blob = new Blob([senv.gcm(new Uint8Array(16), new Uint8Array(12)).encrypt(new Uint8Array(1))]);
`;

// A project with exactOptionalPropertyTypes passes an option it may not have as undefined: the
// runtime takes undefined as left out, and so do the option types of both entry points
// (api-surface.test.ts runs these).
const OPTIONAL_CONSUMER = `
import { gcm, ccm, cbc, ecdsa, hmacDrbg, initSync, McsEngine, McsClient, SoftwareBackend, type McsRequest, type CipherResource, type HashResource, type PolicyResource, type RandResource, type SensitiveDataResource, type SignatureResource } from ${JSON.stringify(join(root, 'dist/src/index.js'))};
declare const maybe: number | undefined;
declare const maybePadding: 'pkcs5' | undefined;
declare const maybeBytes: Uint8Array | undefined;
declare const maybeText: string | undefined;
declare const maybeFlag: boolean | undefined;
initSync({ build: undefined });
gcm(new Uint8Array(16), new Uint8Array(12), undefined, { tagLength: maybe });
ccm(new Uint8Array(16), new Uint8Array(12), undefined, { tagLength: maybe, messageLength: maybe });
cbc(new Uint8Array(16), new Uint8Array(16), { padding: maybePadding });
ecdsa('P-256').sign(new Uint8Array(1), new Uint8Array(32), { hash: undefined, format: undefined, prehashed: undefined, extraEntropy: undefined });
hmacDrbg({ hash: undefined, personalization: undefined, predictionResistance: undefined, reseedInterval: maybe, entropy: undefined });
export const engine = McsEngine.create({ dataDir: undefined, masterKey: undefined, masterKeyFile: undefined, clock: undefined, backends: undefined, maxDataSize: maybe });
export const answer = engine.then((m) => m.send({ op: 2, to: 'x', fr: 'C', rqi: '1' }, { binary: undefined }));
export const request: McsRequest = { op: 2, to: 'x', fr: 'C', rqi: '1', ty: maybe, pc: undefined, rvi: maybeText, rcn: undefined, rqet: maybe, rt: undefined, ot: maybeText };
export const backend = new SoftwareBackend({ uniqueId: maybeText, storageQuota: maybe });
declare const client: McsClient;
const none = { name: maybeText, policies: undefined, expirationTime: maybeText, requestExpiration: maybe };
export const bounded = engine.then((m) => new McsClient(m, 'C', maybeText, { requestExpiration: maybe }).request(2, 'x', undefined, undefined, maybe, { requestExpiration: maybe }));
export const hashed = client.hash({ algorithm: 4, ...none });
export const cipher = client.cipher({ algorithm: 1001, maxByteSize: 64, key: maybeBytes, exportable: maybeFlag, nonce: maybeBytes, iv: maybeBytes, aad: maybeBytes, ...none });
export const signature = client.signature({ algorithm: 33, key: maybeBytes, publicKey: maybeBytes, exportable: maybeFlag, format: undefined, prehashed: maybeFlag, ...none });
export const data = client.sensitiveData(new Uint8Array(1), { name: maybeText, policies: undefined });
export const params = (c: CipherResource) => c.setParameters({ nonce: maybeBytes, iv: maybeBytes, aad: maybeBytes });
export const policy = (p: PolicyResource) => p.update({ privileges: undefined, selfPrivileges: [] });
// Every method's last argument: that call's request options (docs/mcs.md, McsClient), an object or null.
const call = { requestExpiration: maybe };
export const perCall = (h: HashResource, c: CipherResource, s: SignatureResource, r: RandResource, d: SensitiveDataResource, p: PolicyResource) => [
  client.register(maybeText, call), client.deregister(null), client.registration(call), client.updateRegistration({}, call), client.deviceInfo(call),
  client.memory(call), client.reboot(undefined, call), h.retrieve(call), h.delete(call), h.set({}, call), h.update(new Uint8Array(1), call), h.discard(call),
  h.calculate(call), c.encrypt(call), c.decrypt(call), c.generateKey(call), c.setParameters({ nonce: maybeBytes }, call), s.sign(call),
  s.verify(new Uint8Array(1), call), s.generateKey(call), r.generate(maybe, call), d.read(call), d.write(new Uint8Array(1), call), p.update({ privileges: undefined }, call),
];
`;

const PCSC_OPTIONAL_CONSUMER = `
import { PcscContext, PcscBackend, discoverPcscBackends, createVirtualCard, VpcdCard, VirtualCardOs, encodeCommand, createTransport, type CommandApdu } from ${JSON.stringify(join(root, 'dist/src/pcsc/exports.js'))};
declare const maybe: number | undefined;
declare const maybeText: string | undefined;
declare const maybeFlag: boolean | undefined;
declare const maybeLog: ((line: string) => void) | undefined;
declare const maybeContext: PcscContext | undefined;
export const ctx = PcscContext.establish({ timeoutMs: maybe });
export const card = ctx.then((c) => c.connect('R', { share: undefined, protocols: undefined, timeoutMs: maybe }));
export const changes = ctx.then((c) => c.getStatusChange([{ reader: 'R', state: maybe }]));
export const backend = new PcscBackend({ reader: 'R', seType: undefined, context: maybeContext, share: undefined, commandTimeoutMs: maybe, log: maybeLog });
export const found = discoverPcscBackends({ context: maybeContext, commandTimeoutMs: maybe });
export const virtual = createVirtualCard({ slot: maybe, host: maybeText, port: maybe, store: maybeText, extended: maybeFlag, log: maybeLog, keepAlive: maybeFlag });
export const vpcd = new VpcdCard(virtual.os, { host: maybeText, port: maybe, keepAlive: maybeFlag });
export const os = new VirtualCardOs([virtual.applet], { atr: undefined, log: maybeLog, limits: undefined });
const command: CommandApdu = { cla: 0, ins: 0xca, p1: 0, p2: 0, data: undefined, ne: maybe, most: maybe, secret: maybeFlag };
export const wire = encodeCommand(command, { extended: maybeFlag, allowExtended: maybeFlag });
export const stack = createTransport({ transmit: async () => new Uint8Array(2) }, { extended: false, log: maybeLog, checkStatus: maybeFlag, maxGetResponseRounds: maybe, maxResponseTotal: maybe, maxCommandData: maybe, maxResponseData: maybe });
`;

const PCSC_CONSUMER = `
import { PcscContext, PcscBackend } from ${JSON.stringify(join(root, 'dist/src/pcsc/exports.js'))};
export const ctx: Promise<PcscContext> = PcscContext.establish();
export type B = PcscBackend;
`;

// \`using\` and \`await using\` (TypeScript 5.2+ on a lib that has them) on what holds secrets or a connection;
// the projects above, on libs without them, type-check the same declarations.
const USING_CONSUMER = `
import { aesKey, gcm, cbc, createHash, createHmac, createCmac, hmacDrbg, McsEngine, SoftwareBackend } from ${JSON.stringify(join(root, 'dist/src/index.js'))};
export function scoped(): Uint8Array {
  using key = aesKey(new Uint8Array(16));
  using enc = gcm(key, new Uint8Array(12)).encryptStream();
  using dec = gcm(key, new Uint8Array(12)).decryptStream();
  using chain = cbc(key, new Uint8Array(16)).encryptStream();
  using h = createHash('SHA-256');
  using m = createHmac('SHA-256', new Uint8Array(32));
  using c = createCmac(key);
  using drbg = hmacDrbg();
  return new Uint8Array([...enc.update(h.digest()), ...m.digest(), ...c.digest(), ...drbg.generate(1), dec.update(chain.final()) ? 1 : 0]);
}
export async function served(): Promise<void> {
  await using backend = new SoftwareBackend();
  await using engine = await McsEngine.create({ backends: [backend] });
  void engine.seIds;
}
`;

const PCSC_USING_CONSUMER = `
import { PcscContext, PcscBackend } from ${JSON.stringify(join(root, 'dist/src/pcsc/exports.js'))};
export async function scoped(): Promise<void> {
  await using ctx = await PcscContext.establish();
  await using card = await ctx.connect('R');
  await using backend = new PcscBackend({ reader: 'R' });
  void [card, backend];
}
`;

function diagnostics(source: string, options: ts.CompilerOptions): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'senv-dts-'));
  const file = join(dir, 'consumer.mts');
  writeFileSync(file, source);
  try {
    const program = ts.createProgram([file], {
      strict: true, noEmit: true, skipLibCheck: false, target: ts.ScriptTarget.ES2022,
      typeRoots: [join(root, 'node_modules/@types')], ...options,
    });
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n') + (d.file ? ` (${d.file.fileName})` : ''));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The types the declarations of the entry points name (what a consumer is handed: signatures, members, base
 * classes, a protected or private constructor's parameters left out as tsc leaves them out) that no entry
 * point exports, as `name (file) <- the exported declaration that names it`, found by walking from every export.
 */
function unnameable(entries: string[]): string[] {
  const program = ts.createProgram(entries, { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: ['node'], typeRoots: [join(root, 'node_modules/@types')] });
  const checker = program.getTypeChecker();
  const target = (s: ts.Symbol) => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const ours = (s: ts.Symbol) => (s.declarations ?? []).some((d) => d.getSourceFile().fileName.startsWith(join(root, 'dist/src/')));
  const exported = new Set(entries.flatMap((e) => checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(e)!)!).map(target)));
  const found = new Set<string>();
  const seen = new Set<ts.Symbol>();
  const queue = [...exported];
  for (let s = queue.shift(); s; s = queue.shift()) {
    if (seen.has(s)) continue;
    seen.add(s);
    const visit = (n: ts.Node): void => {
      if (ts.isTypeReferenceNode(n) || ts.isExpressionWithTypeArguments(n) || ts.isTypeQueryNode(n)) {
        const name = ts.isTypeReferenceNode(n) ? n.typeName : ts.isTypeQueryNode(n) ? n.exprName : n.expression;
        const ref = checker.getSymbolAtLocation(ts.isQualifiedName(name) ? name.left : name);
        const named = ref && target(ref);
        if (named && ours(named) && !(named.flags & ts.SymbolFlags.TypeParameter)) {
          if (!exported.has(named)) found.add(`${named.name} (${named.declarations![0]!.getSourceFile().fileName.slice(root.length)}) <- ${s.name}`);
          queue.push(named);
        }
      }
      ts.forEachChild(n, visit);
    };
    for (const d of s.declarations ?? []) if (ours(s)) visit(d);
  }
  return [...found];
}

const resolutions = [
  { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 },
  { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler },
];

describe('published declarations', () => {
  it('name no type that neither entry point exports: a consumer can name every type it is handed', () => {
    expect(unnameable([join(root, 'dist/src/index.d.ts'), join(root, 'dist/src/pcsc/exports.d.ts')])).toEqual([]);
  });

  for (const r of resolutions) {
    const name = ts.ModuleResolutionKind[r.moduleResolution!];
    it(`root, a Node project without the DOM lib (${name})`, () => {
      expect(diagnostics(CONSUMER, { ...r, lib: ['lib.es2022.d.ts'], types: ['node'] })).toEqual([]);
    });
    it(`root, a browser project without @types/node (${name})`, () => {
      expect(diagnostics(CONSUMER + DOM_CONSUMER, { ...r, lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], types: [] })).toEqual([]);
    });
    it(`root, a browser project on the ES2020 lib (${name})`, () => {
      expect(diagnostics(CONSUMER + DOM_CONSUMER, { ...r, lib: ['lib.es2020.d.ts', 'lib.dom.d.ts'], types: [] })).toEqual([]);
    });
    it(`root, options given as undefined under exactOptionalPropertyTypes (${name})`, () => {
      expect(diagnostics(OPTIONAL_CONSUMER, { ...r, lib: ['lib.es2022.d.ts'], types: ['node'], exactOptionalPropertyTypes: true })).toEqual([]);
    });
    it(`root, \`using\` on keys, streams and the DRBG, \`await using\` on the engine and a backend (${name})`, () => {
      expect(diagnostics(USING_CONSUMER, { ...r, lib: ['lib.esnext.d.ts'], types: [] })).toEqual([]);
      expect(diagnostics(USING_CONSUMER, { ...r, lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'], types: ['node'] })).toEqual([]);
    });
    it(`onem2m-senv/pcsc, \`await using\` on a context, a card and a backend (${name})`, () => {
      expect(diagnostics(PCSC_USING_CONSUMER, { ...r, lib: ['lib.esnext.d.ts'], types: ['node'] })).toEqual([]);
    });
    it(`onem2m-senv/pcsc, a Node project without the DOM lib (${name})`, () => {
      expect(diagnostics(PCSC_CONSUMER, { ...r, lib: ['lib.es2022.d.ts'], types: ['node'] })).toEqual([]);
    });
    it(`onem2m-senv/pcsc, options given as undefined under exactOptionalPropertyTypes (${name})`, () => {
      expect(diagnostics(PCSC_OPTIONAL_CONSUMER, { ...r, lib: ['lib.es2022.d.ts'], types: ['node'], exactOptionalPropertyTypes: true })).toEqual([]);
    });
  }
});
