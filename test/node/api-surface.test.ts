// The public surface: what a caller can reach cannot corrupt the engine or the core, and bad
// arguments are typed errors (SenvError subclasses with a code).
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createCipheriv } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as senv from '../../src/index.ts';
import type * as PcscExports from '../../src/pcsc/exports.ts';
import ts from 'typescript';
import { runModule } from './run-child.ts';
import { AesKey, aesKey, createCmac, sha256Many, CIPHERS, CORE_BUILDS, ecdsa, gcm, HASHES, hmac, initSync, InvalidInputError, InvalidValueError, LengthError, McsClient, McsEngine, McsError, SenvError, SIGNATURES, SoftwareBackend, StateError, UnknownAlgorithmError } from '../../src/index.ts';

describe('public API surface', () => {
  /**
   * Every file of the built root (`npm run build`) that `entry` reaches through relative imports and
   * re-exports, with the lines of each that `bad` matches; fails if fewer than `atLeast` files were reached.
   */
  const builtLinesMatching = (entry: string, toFile: (specifier: string) => string, bad: RegExp, atLeast = 20): string[] => {
    const root = fileURLToPath(new URL(`../../dist/src/${entry}`, import.meta.url));
    const seen = new Set<string>();
    const found: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const line of text.split('\n')) if (bad.test(line)) found.push(`${relative(dirname(root), file)}: ${line.trim()}`);
      for (const m of text.matchAll(/(?:from|import\() ?['"](\.{1,2}\/[^'"]+)\.(?:js|ts)['"]/g)) visit(join(dirname(file), toFile(m[1]!)));
    };
    visit(root);
    expect(seen.size).toBeGreaterThanOrEqual(atLeast);
    return found;
  };

  it('the error classes of onem2m-senv/pcsc name themselves on their prototypes, as the root\'s do', async () => {
    const pcsc = await import('../../src/pcsc/exports.ts');
    const classes = Object.entries(pcsc).filter(([, v]) => typeof v === 'function' && v.prototype instanceof SenvError);
    expect(classes.length).toBeGreaterThanOrEqual(3);
    for (const [exported, cls] of classes) expect(Object.getOwnPropertyDescriptor((cls as { prototype: Error }).prototype, 'name')?.value, exported).toBe(exported);
  });

  it('onem2m-senv/pcsc where no Node or Deno runs (a browser whose bundler stubbed node: modules) says so, not to install libpcsclite', async () => {
    const pcsc = JSON.stringify(new URL('../../dist/src/pcsc/index.js', import.meta.url).href);
    const r = await runModule(`Object.defineProperty(globalThis, 'process', { value: undefined, configurable: true });
      const { PcscContext } = await import(${pcsc});
      await PcscContext.establish().catch((e) => console.log(e.name + ': ' + e.message));`);
    expect(r.out.trim()).toBe('PcscUnavailableError: the native PC/SC bridge is a Node-API addon: it runs on Node and Deno, not in this runtime (a browser)');
  });

  it('the root\'s modules name no Node built-in a bundler would follow into a browser bundle', () => {
    // A literal 'node:…' in an import (static or dynamic) or a require fails esbuild's and webpack's browser builds.
    expect(builtLinesMatching('index.js', (s) => `${s}.js`, /(?:from|import\(|require\() ?['"]node:/)).toEqual([]);
  });

  it('the built root\'s source maps carry their sources: the tarball ships dist/src, not src/', () => {
    const maps = builtLinesMatching('index.js', (s) => `${s}.js`, /^\/\/# sourceMappingURL=/)
      .map((line) => line.split(':')[0]!.replace(/\.js$/, '.js.map'));
    expect(maps.length).toBeGreaterThan(20);
    const root = fileURLToPath(new URL('../../dist/src/', import.meta.url));
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(join(root, map), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
      expect(sourcesContent?.length, map).toBe(sources.length);
      expect(sourcesContent!.every((s) => typeof s === 'string' && s.length > 0), map).toBe(true);
    }
  });

  it('the embedded WASM module has no source map: the package carries its base64 once, not again as the map\'s inlined source', () => {
    const js = readFileSync(fileURLToPath(new URL('../../dist/src/core/wasm-binaries.generated.js', import.meta.url)), 'utf8');
    expect(js).toMatch(/SIMD_WASM_BASE64 = "/);
    expect(js).not.toMatch(/sourceMappingURL/);
    expect(existsSync(fileURLToPath(new URL('../../dist/src/core/wasm-binaries.generated.js.map', import.meta.url)))).toBe(false);
  });

  it('the declaration of the embedded WASM types it as string: the package carries the base64 once in .js, not again in .d.ts', () => {
    const dts = readFileSync(fileURLToPath(new URL('../../dist/src/core/wasm-binaries.generated.d.ts', import.meta.url)), 'utf8');
    expect(dts.length).toBeLessThan(1000);
    expect(dts).toMatch(/SIMD_WASM_BASE64: string;/);
  });

  it('the declarations of both entry points name no generic Uint8Array (README: TypeScript 5.4 reads them; 5.7 made Uint8Array generic)', () => {
    // Fresh results are Bytes, spelt ReturnType<Uint8Array['slice']>, which names no type argument.
    expect(builtLinesMatching('index.d.ts', (s) => `${s}.d.ts`, /Uint8Array<|ArrayBufferLike/)).toEqual([]);
    expect(builtLinesMatching('pcsc/exports.d.ts', (s) => `${s}.d.ts`, /Uint8Array<|ArrayBufferLike/, 15)).toEqual([]);
    expect(builtLinesMatching('index.d.ts', (s) => `${s}.d.ts`, /^export type Bytes = /)).toEqual(["core/bytes.d.ts: export type Bytes = ReturnType<Uint8Array['slice']>;"]);
  });

  it('an AesKey exposes no handle, core or constructor: no caller can wrap a context it does not own', () => {
    const k = aesKey(new Uint8Array(16).fill(1));
    for (const name of ['handle', 'owner', 'copy']) expect(name in k, name).toBe(false);
    const Ctor = AesKey as unknown as new (...args: unknown[]) => AesKey;
    expect(() => new Ctor(Symbol('AesKey'), 1, 16, {})).toThrow(InvalidInputError);
    expect(gcm(k, new Uint8Array(12)).encrypt(new Uint8Array(4))).toEqual(gcm(new Uint8Array(16).fill(1), new Uint8Array(12)).encrypt(new Uint8Array(4)));
    k.destroy();
  });

  it('the exported algorithm tables and build list are frozen all the way down', () => {
    for (const table of [CIPHERS, SIGNATURES, HASHES]) {
      expect(Object.isFrozen(table)).toBe(true);
      for (const info of Object.values(table)) {
        expect(Object.isFrozen(info)).toBe(true);
        if ('keyLengths' in info) expect(Object.isFrozen(info.keyLengths)).toBe(true);
      }
    }
    expect(() => ((CIPHERS[1001] as { tagLength?: number }).tagLength = 4)).toThrow(TypeError);
    expect(() => (CORE_BUILDS as CoreBuildList).reverse()).toThrow(TypeError);
    const info = initSync();
    expect(() => ((info as { build: string }).build = 'bogus')).toThrow(TypeError);
  });

  it('describe() hands out a frozen copy: a caller cannot change what the SE reports', async () => {
    const engine = await McsEngine.create();
    const seId = engine.seIds[0]!;
    const d = engine.describe(seId)!;
    expect(() => ((d.description as { securityLevel: number }).securityLevel = 3)).toThrow(TypeError);
    expect(engine.describe(seId)!.description.securityLevel).toBe(1);
    await engine.close();
  });

  it('hashMany gives each digest its own buffer; a MAC object states its lengths as a Hash does', () => {
    const d = sha256Many([Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)]);
    for (const x of d) expect(x.buffer.byteLength).toBe(32);
    const m = createCmac(new Uint8Array(16));
    expect([m.outputLen, m.blockLen]).toEqual([16, 16]);
    m.destroy();
  });

  it('each error class types its code as its own literal: instanceof narrows it, no comparison with the union needed', () => {
    // The compiler checks the literals (tsc -p tsconfig.json covers this file); the run checks they are the codes thrown.
    const root = [
      [new senv.InvalidInputError('m').code, 'ERR_INVALID_INPUT'], [new senv.UnknownAlgorithmError('m').code, 'ERR_UNKNOWN_ALGORITHM'],
      [new senv.LengthError('m').code, 'ERR_BAD_LENGTH'], [new senv.StateError('m').code, 'ERR_STATE'],
      [new senv.AuthenticationError('m').code, 'ERR_AUTH'], [new senv.PaddingError('m').code, 'ERR_PADDING'],
      [new senv.InvalidValueError('m').code, 'ERR_INVALID_VALUE'], [new senv.CoreError('m').code, 'ERR_CORE'],
      [new senv.SelfTestError('m').code, 'ERR_CORE'], [new senv.OutOfMemoryError('m').code, 'ERR_OUT_OF_MEMORY'],
      [new senv.DeviceFullError('m').code, 'ERR_OUT_OF_MEMORY'], [new senv.McsError(4000, 'm').code, 'ERR_MCS'],
      [new senv.DataDirLockedError('/d', 1, '').code, 'ERR_STATE'],
    ] as const;
    for (const [code, expected] of root) expect(code).toBe(expected);
    expectTypeOf<senv.AuthenticationError['code']>().toEqualTypeOf<'ERR_AUTH'>();
    expectTypeOf<senv.LengthError['code']>().toEqualTypeOf<'ERR_BAD_LENGTH'>();
    expectTypeOf<senv.DeviceFullError['code']>().toEqualTypeOf<'ERR_OUT_OF_MEMORY'>();
    expectTypeOf<senv.DataDirLockedError['code']>().toEqualTypeOf<'ERR_STATE'>();
    expectTypeOf<senv.McsError['code']>().toEqualTypeOf<'ERR_MCS'>();
    expectTypeOf<PcscExports.PcscError['code']>().toEqualTypeOf<'ERR_PCSC'>();
    expectTypeOf<PcscExports.ShortResponseError['code']>().toEqualTypeOf<'ERR_PCSC'>();
    expectTypeOf<PcscExports.PcscUnavailableError['code']>().toEqualTypeOf<'ERR_PCSC_UNAVAILABLE'>();
    expectTypeOf<PcscExports.ApduError['code']>().toEqualTypeOf<'ERR_APDU'>();
    expectTypeOf<PcscExports.StatusWordError['code']>().toEqualTypeOf<'ERR_CARD_STATUS'>();
    // The base class keeps the union, for a switch over any SenvError.
    expectTypeOf<senv.SenvError['code']>().toEqualTypeOf<senv.SenvErrorCode>();
  });

  it('every export of the package root, and every public member of its classes and interfaces, has JSDoc: what an editor shows on hover', () => {
    const src = fileURLToPath(new URL('../../src/', import.meta.url));
    const entry = join(src, 'index.ts');
    const program = ts.createProgram([entry], { noEmit: true, strict: true, allowImportingTsExtensions: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [] });
    const checker = program.getTypeChecker();
    const documented = (s: ts.Symbol | ts.Signature) => ts.displayPartsToString(s.getDocumentationComment(checker)).trim() !== '';
    const undocumented: string[] = [];
    // An overload's own JSDoc is what the editor shows for a call that picks it.
    const overloads = (name: string, s: ts.Symbol, at: ts.Node) => {
      const sigs = checker.getTypeOfSymbolAtLocation(s, at).getCallSignatures();
      if (sigs.length > 1) for (const [k, sig] of sigs.entries()) if (!documented(sig)) undocumented.push(`${name} (overload ${k + 1})`);
    };
    for (const exported of checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(entry)!)!)) {
      const sym = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      // What the build strips from the declarations (backend.ts's helpers, which `export type *` names) no caller sees.
      if (sym.declarations?.some((d) => ts.getJSDocTags(d).some((t) => t.tagName.text === 'internal'))) continue;
      if (!documented(sym)) undocumented.push(exported.name);
      if (sym.flags & ts.SymbolFlags.Function) overloads(exported.name, sym, sym.declarations![0]!);
      if (!(sym.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface))) continue;
      for (const member of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(sym))) {
        const decl = member.declarations?.[0];
        // Error's own members are the runtime's; private and protected ones no caller sees.
        if (!decl || !decl.getSourceFile().fileName.startsWith(src) || member.name.startsWith('#')) continue;
        if (ts.getCombinedModifierFlags(decl) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
        if (!documented(member)) undocumented.push(`${exported.name}.${member.name}`);
        overloads(`${exported.name}.${member.name}`, member, decl);
      }
    }
    expect(undocumented).toEqual([]);
  }, 30_000);

  it('sign()\'s options reused for verify() are refused by the compiler, as verify() refuses them when run', () => {
    const p256 = ecdsa('P-256');
    const { secretKey, publicKey } = p256.keygen();
    const message = Uint8Array.of(1, 2, 3);
    const signing: senv.SignOptions = { format: 'raw', extraEntropy: false };
    const sig = p256.sign(message, secretKey, signing);
    // @ts-expect-error extraEntropy is the signer's
    expect(() => p256.verify(sig, message, publicKey, signing)).toThrow(InvalidInputError);
    const { extraEntropy: _, ...shared } = signing;
    expect(p256.verify(sig, message, publicKey, shared)).toBe(true);
  });

  it('CommonOptions shared by McsClient\'s factories are refused by the compiler where the type has no such attribute, as they are when run', async () => {
    const engine = await McsEngine.create();
    const c = await new McsClient(engine, 'CAE1').register();
    const shared: senv.CommonOptions = { expirationTime: '20991231T000000' };
    // @ts-expect-error a <sensitiveDataObject> has no et
    await expect(c.sensitiveData(Uint8Array.of(1), shared)).rejects.toThrow(/unknown option 'expirationTime'/);
    const withPolicies: senv.CommonOptions = { policies: [] };
    // @ts-expect-error an <accessControlPolicy> has no acpi
    await expect(c.accessControlPolicy({ privileges: [], selfPrivileges: [], ...withPolicies })).rejects.toThrow(/unknown option 'policies'/);
    await engine.close();
  });

  it('only the error classes are exported, not the internal helpers', () => {
    for (const name of ['isBytes', 'assertBytes', 'shown', 'statusError']) expect(name in senv, name).toBe(false);
  });

  it('the backends\' own argument checks are not published: the root re-exports backend.ts\'s types only, so a declared helper would be undefined at run time', () => {
    const helpers = ['checkRandomLength', 'checkRebootType', 'checkSignatureOptions', 'checkCipherParams', 'checkStoredKey', 'storedKeyFault', 'checkUniqueId', 'isKeyHandle'];
    for (const name of helpers) expect(name in senv, name).toBe(false);
    expect(builtLinesMatching('index.d.ts', (s) => `${s}.d.ts`, new RegExp(`\\b(${helpers.join('|')})\\(`))).toEqual([]);
    // What a backend author does need is a value.
    expect(typeof senv.markKeyHandle).toBe('function');
  });

  it('McsClient takes bytes only, and McsError is a SenvError with its rsc', async () => {
    const engine = await McsEngine.create();
    const c = await new McsClient(engine, 'CAE1').register();
    const h = await c.hash({ algorithm: 4 });
    await expect(h.update('YWJj' as unknown as Uint8Array)).rejects.toThrow(InvalidInputError);
    await expect(c.sensitiveData('c2VjcmV0' as unknown as Uint8Array)).rejects.toThrow(InvalidInputError);
    await expect(c.cipher({ algorithm: 1001, maxByteSize: 64, key: 'AAAAAAAAAAAAAAAAAAAAAA==' as unknown as Uint8Array })).rejects.toThrow(InvalidInputError);
    const refused = await new McsClient(engine, 'CAE9').hash({ algorithm: 4 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(McsError);
    expect(refused).toBeInstanceOf(SenvError);
    expect(refused).toMatchObject({ code: 'ERR_MCS', rsc: 4106, message: expect.stringMatching(/not registered/) });
    await engine.close();
  });

  it('McsClient.reboot(1) is a cold reset and reboot(2) a warm one, reaching the backend as such', async () => {
    const seen: number[] = [];
    class Rebooting extends SoftwareBackend {
      override async reboot(type: 1 | 2): Promise<void> {
        seen.push(type);
        await super.reboot(type);
      }
    }
    const engine = await McsEngine.create({ backends: [new Rebooting()] });
    const c = await new McsClient(engine, 'CAE1').register();
    await c.reboot(1);
    await c.reboot(2);
    await c.reboot();
    expect(seen).toEqual([1, 2, 1]);
    await engine.close();
  });

  it('arrays a RETRIEVE hands out in-process are copies: changing them changes nothing stored', async () => {
    const engine = await McsEngine.create();
    const seId = engine.seIds[0]!;
    const send = (op: 1 | 2, pc?: Record<string, unknown>) => engine.send({ op, to: seId, fr: 'CAE1', rqi: 'a', ...(pc ? { ty: 20011, pc } : {}) }, { binary: true });
    await send(1, { 'senv:Senv': { rn: 'reg', sID: seId, seL: 1, srt: [20004, 20007] } });
    const first = (await send(2)).pc!['senv:Senv'] as { srt: number[] };
    first.srt[0] = 99999;
    first.srt.push(1);
    expect(((await send(2)).pc!['senv:Senv'] as { srt: number[] }).srt).toEqual([20004, 20007]);
    await engine.close();
  });

  it('SoftwareBackend checks what it is given: key material, algorithms, a key\'s purpose, the direction', async () => {
    const b = new SoftwareBackend();
    await b.open();
    await expect(b.importKey({ use: 'signature', algorithm: 25 }, 'secret', 'str' as unknown as Uint8Array)).rejects.toThrow(InvalidInputError);
    await expect(b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(5))).rejects.toThrow(LengthError);
    await expect(b.importKey({ use: 'signature', algorithm: 33 }, 'public', new Uint8Array(64))).rejects.toThrow(LengthError);
    const point = ecdsa('P-256').keygen().publicKey;
    point[64]! ^= 1;
    await expect(b.importKey({ use: 'signature', algorithm: 33 }, 'public', point)).rejects.toThrow(InvalidValueError);
    await expect(b.importKey({ use: 'signature', algorithm: 33 }, 'public', new Uint8Array(65).fill(0))).rejects.toThrow(/not a point of P-256/);
    await expect(b.generateKey({ use: 'cipher', algorithm: 9999 as never })).rejects.toThrow(UnknownAlgorithmError);
    // Whatever a JS caller passes: typed errors, and a string shown by its length, never quoted (it may be a key in hex).
    const hexText = '00112233445566778899aabbccddeeff';
    for (const [what, call] of [
      ['importKey(undefined)', () => b.importKey(undefined as never, 'secret', new Uint8Array(16))],
      ['generateKey(null)', () => b.generateKey(null as never)],
      ['a use of hex text', () => b.generateKey({ use: hexText as never, algorithm: 1001 })],
      ['loadKey without a stored key', () => b.loadKey({ use: 'cipher', algorithm: 1001 }, undefined as never)],
    ] as const) {
      const e = await call().then(() => undefined, (x: unknown) => x);
      expect(e, what).toBeInstanceOf(InvalidInputError);
      expect((e as Error).message, what).not.toContain(hexText);
    }
    for (const [what, call] of [
      ['random', () => b.random(hexText as never, 16)],
      ['digest', async () => b.digest(hexText as never)],
      ['digest of a symbol', async () => b.digest(Symbol('x') as never)],
      ['cipher', async () => b.cipher(hexText as never, undefined as never, 'encrypt', {})],
      ['signature', async () => b.signature(Symbol('x') as never, undefined as never, { format: 'der', prehashed: false })],
    ] as const) {
      const e = await call().then(() => undefined, (x: unknown) => x);
      expect(e, what).toBeInstanceOf(UnknownAlgorithmError);
      expect((e as Error).message, what).not.toContain(hexText);
    }
    expect(() => senv.markKeyHandle(5 as never)).toThrow(InvalidInputError);
    const aes = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', new Uint8Array(16));
    expect(() => b.signature(25, aes, { format: 'der', prehashed: false })).toThrow(/made for cipher algorithm 1001/);
    // Nor for another algorithm of its use: a GCM key does not become a CBC key.
    expect(() => b.cipher(24, aes, 'encrypt', { iv: new Uint8Array(16) })).toThrow(/^the key was made for cipher algorithm 1001, not cipher algorithm 24$/);
    expect(() => b.signature(33, aes, { format: 'der', prehashed: false })).toThrow(InvalidInputError);
    expect(() => b.cipher(1001, aes, 'sideways' as 'encrypt', { nonce: new Uint8Array(12) })).toThrow(InvalidInputError);
    for (const bad of [undefined, null, 'nonce']) expect(() => b.cipher(1001, aes, 'encrypt', bad as never), String(bad)).toThrow(InvalidInputError);
    const mac = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(20).fill(7));
    for (const bad of [undefined, null, 'der', {}, { format: 'DER', prehashed: false }, { format: 'raw', prehashed: 1 }]) {
      expect(() => b.signature(25, mac, bad as never), String(JSON.stringify(bad))).toThrow(InvalidInputError);
    }
    const s = b.signature(25, mac, { format: 'der', prehashed: false });
    await s.update(Uint8Array.of(1, 2, 3));
    expect(await s.sign()).toEqual(hmac('SHA-256', new Uint8Array(20).fill(7), Uint8Array.of(1, 2, 3)));
    await b.close();
  });

  it('SoftwareBackend signature streams: a public key refused by sign(), a signature that is no Uint8Array by verify(), before the message is taken; the options read once', async () => {
    const b = new SoftwareBackend();
    await b.open();
    const msg = Uint8Array.of(1, 2, 3);
    const p256 = ecdsa('P-256');
    const { secretKey, publicKey } = p256.keygen();
    const pub = await b.importKey({ use: 'signature', algorithm: 33 }, 'public', publicKey);
    const signed = p256.sign(msg, secretKey, { format: 'der' });
    const s = b.signature(33, pub, { format: 'der', prehashed: false });
    await s.update(msg);
    expect(() => s.sign(), 'a public key').toThrow(new InvalidInputError('a public key only verifies: sign() needs a secret key'));
    expect(await s.verify(signed), 'the message is still there to verify').toBe(true);
    const macKey = new Uint8Array(20).fill(7);
    const mac = b.signature(25, await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', macKey), { format: 'der', prehashed: false });
    await mac.update(msg);
    for (const bad of ['abc', [1, 2, 3], undefined]) expect(() => mac.verify(bad as never), String(bad)).toThrow(/^signature must be a Uint8Array, got /);
    expect(await mac.verify(hmac('SHA-256', macKey, msg)), 'the message is still there to verify').toBe(true);
    // Options whose getters answer differently at each read: what was checked is what is used.
    let reads = 0;
    const shifty = { format: 'der', get prehashed() { return reads++ > 0; } };
    const e = b.signature(33, await b.importKey({ use: 'signature', algorithm: 33 }, 'secret', secretKey), shifty as never);
    await e.update(msg);
    expect(p256.verify(await e.sign(), msg, publicKey, { format: 'der' }), 'signed over the message, hashed, as first read').toBe(true);
    await b.close();
  });

  it('SoftwareBackend cipher streams: a last chunk\'s output in `into` is joined with the tag where `into` has no room for both; a last chunk refused releases the stream\'s core context', async () => {
    const b = new SoftwareBackend();
    await b.open();
    const key = new Uint8Array(16).fill(3), nonce = new Uint8Array(12).fill(4), pt = Uint8Array.from({ length: 32 }, (_, i) => i);
    const node = createCipheriv('aes-128-gcm', key, nonce);
    const expected = Buffer.concat([node.update(pt), node.final(), node.getAuthTag()]);
    const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', key);
    const enc = b.cipher(1001, k, 'encrypt', { nonce });
    const head = await enc.update(pt.subarray(0, 16));
    const into = new Uint8Array(16);
    const rest = await enc.final(pt.subarray(16), into);
    expect(Buffer.concat([head, rest]).equals(expected)).toBe(true);
    // CBC decryption, its last chunk refused (`into` detached): the stream's context and key copy go at once.
    const cbcKey = await b.importKey({ use: 'cipher', algorithm: 24 }, 'secret', key);
    const dec = b.cipher(24, cbcKey, 'decrypt', { iv: new Uint8Array(16) });
    const base = senv.coreMemoryStats().inUseBytes;
    await dec.update(new Uint8Array(16));
    expect(senv.coreMemoryStats().inUseBytes).toBeGreaterThan(base);
    const gone = new ArrayBuffer(64), into2 = new Uint8Array(gone);
    structuredClone(gone, { transfer: [gone] });
    expect(() => dec.final(new Uint8Array(16), into2)).toThrow(/^into is a view of a detached ArrayBuffer$/);
    expect(senv.coreMemoryStats().inUseBytes).toBe(base);
    await b.close();
  });

  it('SoftwareBackend: random() lengths and reboot types checked alike for every rngType; after close() no key is handed out and those held are released', async () => {
    const b = new SoftwareBackend();
    await b.open();
    for (const type of [1, 2] as const) {
      for (const bad of [-1, Number.NaN, 1.5, '8', 2 ** 53]) await expect(b.random(type, bad as number), `rngType ${type}, ${String(bad)}`).rejects.toThrow(InvalidInputError);
      await expect(b.random(type, b.capabilities.maxRandomLength + 1)).rejects.toThrow(LengthError);
      expect((await b.random(type, b.capabilities.maxRandomLength)).length).toBe(b.capabilities.maxRandomLength);
    }
    await expect(b.reboot(7 as never)).rejects.toThrow(InvalidInputError);
    const hmacKey = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', new Uint8Array(32).fill(9));
    const ecKey = await b.generateKey({ use: 'signature', algorithm: 33 });
    const stored = await b.storeKey(hmacKey);
    await b.close();
    await expect(b.exportKey(hmacKey)).rejects.toThrow(StateError);
    await expect(b.storeKey(hmacKey)).rejects.toThrow(StateError);
    await expect(b.publicKey(ecKey)).rejects.toThrow(StateError);
    await expect(b.loadKey({ use: 'signature', algorithm: 25 }, stored)).rejects.toThrow(StateError);
    expect(() => (hmacKey as unknown as { bytes: Uint8Array }).bytes, 'released at close').toThrow(/released/);
    expect(() => (ecKey as unknown as { bytes: Uint8Array }).bytes, 'released at close').toThrow(/released/);
  });

  it('McsEngine.create and send take null for options, as left out', async () => {
    const engine = await McsEngine.create(null);
    const answer = await engine.send({ op: 2, to: engine.seIds[0]!, fr: 'C1', rqi: '1' }, null);
    expect(answer.rsc).not.toBe(4000);
    expect(answer.rqi).toBe('1');
    await engine.close();
  });

  it('an option given as undefined is left out, everywhere its type says so (declarations.test.ts checks the types)', async () => {
    const key = new Uint8Array(16).fill(2), nonce = new Uint8Array(12), msg = new Uint8Array(20).fill(5);
    expect(initSync({ build: undefined }).build).toBe(initSync().build);
    expect(gcm(key, nonce, undefined, { tagLength: undefined }).encrypt(msg)).toEqual(gcm(key, nonce).encrypt(msg));
    expect(senv.ccm(key, nonce, undefined, { tagLength: undefined, messageLength: undefined }).encrypt(msg)).toEqual(senv.ccm(key, nonce).encrypt(msg));
    expect(senv.cbc(key, new Uint8Array(16), { padding: undefined }).encrypt(msg)).toEqual(senv.cbc(key, new Uint8Array(16)).encrypt(msg));
    const p256 = ecdsa('P-256'), { secretKey, publicKey } = p256.keygen();
    const sig = p256.sign(msg, secretKey, { hash: undefined, format: undefined, prehashed: undefined, extraEntropy: undefined });
    expect(p256.verify(sig, msg, publicKey, { hash: undefined, format: undefined, prehashed: undefined })).toBe(true);
    expect(senv.hmacDrbg({ hash: undefined, personalization: undefined, predictionResistance: undefined, reseedInterval: undefined, entropy: undefined }).generate(8).length).toBe(8);
    const engine = await McsEngine.create({ dataDir: undefined, masterKey: undefined, masterKeyFile: undefined, masterKeyEnv: undefined, clock: undefined, backends: undefined, maxDataSize: undefined, memoryQuota: undefined, files: undefined, store: undefined });
    expect((await engine.send({ op: 2, to: engine.seIds[0]!, fr: 'C1', rqi: '1' }, { binary: undefined })).rqi).toBe('1');
    await engine.close();
  });

  it('McsClient, a request primitive and SoftwareBackend take a member given as undefined as left out (declarations.test.ts checks the types)', async () => {
    const none = { name: undefined, policies: undefined, expirationTime: undefined, requestExpiration: undefined };
    const key = new Uint8Array(16).fill(7), nonce = new Uint8Array(12).fill(1), msg = new Uint8Array(24).fill(9);
    const engine = await McsEngine.create({ backends: [new SoftwareBackend({ uniqueId: undefined, storageQuota: undefined })] });
    const seId = engine.seIds[0]!;
    const me = await new McsClient(engine, 'C1', undefined, { requestExpiration: undefined }).register();
    expect((await me.memory({ requestExpiration: undefined })).total).toBe(64 * 1024 * 1024);
    expect((await me.request(2, seId, 'senv:Senv', undefined, undefined, { requestExpiration: undefined })).ri).toBe((await me.registration()).ri);
    const answer = await engine.send({ op: 2, to: seId, fr: 'C1', rqi: '1', ty: undefined, pc: undefined, rvi: undefined, rcn: undefined, rqet: undefined, rt: undefined, ot: undefined });
    expect(answer.rsc).toBe(2000);
    const h = await me.hash({ algorithm: 4, ...none });
    expect(await (await h.update(msg, { requestExpiration: undefined })).calculate({ requestExpiration: undefined })).toEqual(senv.sha256(msg));
    const c = await me.cipher({ algorithm: 1001, maxByteSize: 64, key, exportable: undefined, nonce: undefined, iv: undefined, aad: undefined, ...none });
    await c.setParameters({ nonce, iv: undefined, aad: undefined });
    expect(await (await c.update(msg)).encrypt()).toEqual(gcm(key, nonce).encrypt(msg));
    const s = await me.signature({ algorithm: 33, key: undefined, publicKey: undefined, exportable: undefined, format: undefined, prehashed: undefined, ...none });
    await s.generateKey();
    const sig = await (await s.update(msg)).sign();
    expect(await (await s.update(msg)).verify(sig)).toBe(true);
    expect(await (await me.sensitiveData(msg, { name: undefined, policies: undefined })).read()).toEqual(msg);
    const rules = [{ originators: ['C1'], operations: 63 }];
    const acp = await me.accessControlPolicy({ privileges: rules, selfPrivileges: rules, name: undefined, expirationTime: undefined });
    await acp.update({ privileges: undefined, selfPrivileges: [{ originators: ['C1', 'C2'], operations: 63 }] });
    expect(await acp.retrieve()).toMatchObject({ pv: { acr: [{ acor: ['C1'] }] }, pvs: { acr: [{ acor: ['C1', 'C2'] }] } });
    await engine.close();
  });

  it('the option types of onem2m-senv/pcsc take a member given as undefined as left out (declarations.test.ts checks the types)', async () => {
    const pcsc = await import('../../src/pcsc/exports.ts');
    const backend = new pcsc.PcscBackend({ reader: 'R', seType: undefined, context: undefined, share: undefined, commandTimeoutMs: undefined, log: undefined });
    expect(backend.description.seType).toBe(2);
    const card = pcsc.createVirtualCard({ slot: undefined, host: undefined, port: undefined, store: undefined, extended: undefined, log: undefined, keepAlive: undefined });
    expect(card.vpcd.address).toBe('127.0.0.1:35963');
    expect(new pcsc.VpcdCard(card.os, { host: undefined, port: undefined, keepAlive: undefined }).address).toBe('127.0.0.1:35963');
    const os = new pcsc.VirtualCardOs([card.applet], { atr: undefined, log: undefined, limits: undefined });
    expect(os.atr()).toEqual(new pcsc.VirtualCardOs([card.applet]).atr());
    const select = { cla: 0, ins: 0xa4, p1: 4, p2: 0, data: pcsc.SENV_AID };
    const wire = pcsc.encodeCommand(select);
    expect(pcsc.encodeCommand({ ...select, ne: undefined, most: undefined, secret: undefined }, { extended: undefined, allowExtended: undefined })).toEqual(wire);
    const sent: Uint8Array[] = [];
    const { transport } = pcsc.createTransport({ transmit: async (apdu: Uint8Array) => (sent.push(apdu.slice()), Uint8Array.of(0x90, 0)) }, {
      extended: false, log: undefined, checkStatus: undefined, maxGetResponseRounds: undefined, maxResponseTotal: undefined, maxCommandData: undefined, maxResponseData: undefined,
    });
    expect((await transport.transmit({ cla: 0, ins: 0xca, p1: 0, p2: 0x66, data: undefined, ne: 256 })).sw).toBe(0x9000);
    expect(sent).toEqual([Uint8Array.of(0, 0xca, 0, 0x66, 0)]);
    await card.close();
  });

  it('a store of its own gets what PersistedSe and PersistedResource publish of the engine\'s objects', async () => {
    const puts: unknown[] = [];
    const store: senv.Persistence = {
      uniqueId: async () => 'u', load: async () => undefined, append: async () => undefined, remove: async () => undefined, close: async () => undefined,
      put: async (se, res) => void puts.push({ se: se.seId, seType: se.backend.description.seType, ri: res.ri, rn: res.rn, ty: res.ty, parent: res.parent?.ri, algorithm: res.attrs.get('algorithm') }),
    };
    const engine = await McsEngine.create({ store });
    const me = await new McsClient(engine, 'C1').register('me');
    const h = await me.hash({ algorithm: 4, name: 'h' });
    const [se, ri] = h.address.split('/');
    expect(puts.at(-1)).toEqual({ se, seType: 4, ri, rn: 'h', ty: 20004, parent: expect.any(String), algorithm: 4 });
    expect(puts.some((p) => (p as { ty: number; rn: string }).ty === 20011 && (p as { rn: string }).rn === 'me')).toBe(true);
    await engine.close();
  });

  it('McsEngine.create refuses options of the wrong kind, named', async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ backends: 'x' }, /backends/], [{ backends: [{}] }, /backends/], [{ dataDir: 5 }, /dataDir/], [{ clock: 5 }, /clock/],
      [{ maxDataSize: Number.NaN }, /maxDataSize/], [{ maxDataSize: -5 }, /maxDataSize/], [{ memoryQuota: 'big' }, /memoryQuota/],
      [{ maxDataSize: 0 }, /^maxDataSize must be a number of bytes \(an integer from 1\)$/], [{ memoryQuota: -1 }, /^memoryQuota must be a number of bytes \(an integer from 0\)$/],
      // An empty path would be read as none: an engine in memory for a caller who asked for a directory.
      [{ dataDir: '' }, /^dataDir must be a directory path/],
      [{ dataDir: '/nonexistent/senv', masterKey: 0 }, /^masterKey must be a Uint8Array of 32 bytes, got 0$/],
      // With dataDir: without one, any master key option is refused as sealing nothing, whose message names them all.
      [{ dataDir: '/tmp/x', masterKeyFile: 5 }, /^masterKeyFile must be a non-empty string$/], [{ dataDir: '/tmp/x', masterKeyFile: '' }, /^masterKeyFile must be a non-empty string$/],
      [{ dataDir: '/tmp/x', masterKeyEnv: {} }, /^masterKeyEnv must be a non-empty string$/], [{ dataDir: '/tmp/x', masterKeyEnv: '' }, /^masterKeyEnv must be a non-empty string$/],
      [{ files: {} }, /files/], [{ store: { load: 1 } }, /store/],
      [{ dataDir: '/tmp/x', masterKey: 'deadbeef' }, /masterKey must be a Uint8Array/], [{ dataDir: '/tmp/x', masterKey: 42 }, /masterKey must be a Uint8Array/],
      // A master key without a data directory seals nothing: refused, not ignored.
      [{ dataDir: '/tmp/x', masterKeyEnv: 'A=B' }, /masterKeyEnv must be a variable name/], [{ dataDir: '/tmp/x', masterKeyEnv: 'A\0B' }, /masterKeyEnv must be a variable name/], [{ masterKey: new Uint8Array(32) }, /give dataDir too/], [{ masterKeyFile: '/nonexistent/key' }, /give dataDir too/], [{ masterKeyEnv: 'NOPE' }, /give dataDir too/],
      // Two sources: the first read would win in silence (masterKey over a file the caller may believe in force).
      [{ dataDir: '/tmp/x', masterKey: new Uint8Array(32), masterKeyFile: '/tmp/k' }, /^give one master key, not masterKey and masterKeyFile$/],
      [{ dataDir: '/tmp/x', masterKeyFile: '/tmp/k', masterKeyEnv: 'K' }, /^give one master key, not masterKeyFile and masterKeyEnv$/],
    ];
    for (const [options, message] of bad) await expect(McsEngine.create(options as never), JSON.stringify(options)).rejects.toThrow(message);
    for (const [options] of bad) await expect(McsEngine.create(options as never)).rejects.toBeInstanceOf(InvalidInputError);
    // The bounds themselves are taken: a quota of 0 bytes, values of 1 byte.
    await (await McsEngine.create({ memoryQuota: 0, maxDataSize: 1 })).close();
    // An options argument is an object, null or left out (README): anything else is refused, named.
    for (const options of [5, 'dataDir', true, [{ dataDir: '/tmp/x' }]]) {
      await expect(McsEngine.create(options as never), JSON.stringify(options)).rejects.toThrow(/McsEngine options must be an object/);
      await expect(McsEngine.create(options as never)).rejects.toBeInstanceOf(InvalidInputError);
    }
    // A key file that cannot be read (a directory here): a StateError with the code, not the runtime's own error.
    await expect(McsEngine.create({ dataDir: join(tmpdir(), `senv-nokey-${process.pid}`), masterKeyFile: tmpdir() })).rejects.toMatchObject({ name: 'StateError', message: expect.stringMatching(/master key file .* cannot be read \(EISDIR\)/) });
    // A missing key file is named too (senv rotate-master-key reads two: the message must say which).
    const missing = join(tmpdir(), `senv-nokey-${process.pid}`, 'no-such-key');
    await expect(McsEngine.create({ dataDir: join(tmpdir(), `senv-nokey-${process.pid}`), masterKeyFile: missing })).rejects.toMatchObject({ name: 'StateError', message: `the master key file ${missing} does not exist` });
    // Bytes of the wrong length: no hint at text encodings, which a key given as bytes has none of.
    for (const length of [0, 31, 33, 64]) {
      await expect(McsEngine.create({ dataDir: join(tmpdir(), `senv-nokey-${process.pid}`), masterKey: new Uint8Array(length).fill(7) }), `${length} bytes`)
        .rejects.toMatchObject({ name: 'LengthError', message: 'masterKey must hold a 32-byte AES-256 key' });
    }
  });
});

type CoreBuildList = string[];
