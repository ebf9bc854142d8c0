// No residue of a secret in JS memory: the copies of keys and data that the
// engine, its data directory, McsClient and the backends make are zeroized
// once they are done with, on success and on failure alike. The copies are
// internal, so each case watches where they are made (a method or a
// constructor wrapped for the test, or the arrays a method hands around) and
// looks at them afterwards.
import { afterEach, describe, expect, it } from 'vitest';
import { createCipheriv, createHash, createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McsClient, McsEngine, SoftwareBackend } from '../../src/index.ts';
import { JournalStore } from '../../src/mcs/store/journal.ts';
import type { CipherAlgorithm, CipherParams, KeyHandle, RngType, SignatureAlgorithm, SignatureStream, StoredKey } from '../../src/backends/backend.ts';
import { AppletChannel } from '../../src/backends/pcsc/session.ts';
import { hex, type CommandApdu } from '../../src/apdu/apdu.ts';
import { Accumulator } from '../../src/mcs/accumulator.ts';
import { holds } from '../portable/harness.ts';
import { SoftwareKey } from '../../src/backends/software/keys.ts';
import { core } from '../../src/core/loader.ts';
import { prng } from '../portable/harness.ts';
import { Session, b64, fails, ok } from '../portable/mcs-kit.ts';
import { InProcessReader } from './pcsc-helpers.ts';
import { SHORT_LIMITS } from '../../src/virtual-card/card.ts';
import { RealUint8Array, spyUint8Arrays } from './uint8array-spy.ts';

const undo: (() => void)[] = [];

afterEach(() => {
  while (undo.length) undo.pop()!();
});

/** Replaces `obj[key]` until the test ends. */
function patch<T extends object, K extends keyof T>(obj: T, key: K, value: T[K]): void {
  const old = obj[key];
  obj[key] = value;
  undo.push(() => {
    obj[key] = old;
  });
}

/** Every Uint8Array made until the test ends (see uint8array-spy.ts). */
function watchNew(onMake?: (made: Uint8Array, from: unknown) => void): Uint8Array[] {
  const spy = spyUint8Arrays(onMake);
  undo.push(() => spy.stop());
  return spy.made;
}

/**
 * The arrays that `set()` copied a source `pick` accepts into until the test ends, and the sources:
 * secretCopy makes its copy over an ArrayBuffer of its own and sets it, where a copy inside the JS
 * heap is made from the source by the constructor (watchNew sees those).
 */
function watchSets(pick: (src: Uint8Array) => boolean): Uint8Array[] {
  const seen: Uint8Array[] = [];
  const set = RealUint8Array.prototype.set;
  patch(RealUint8Array.prototype, 'set', function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
    if (src instanceof RealUint8Array && pick(src)) seen.push(this, src);
    return set.call(this, src, offset);
  });
  return seen;
}

/** Whether the in-process card is running a command now: its own copies are the device's business. */
function watchCard(reader: InProcessReader): { readonly busy: boolean } {
  const state = { busy: false };
  const apdu = reader.os.apdu.bind(reader.os);
  patch(reader.os, 'apdu', (bytes: Uint8Array) => {
    state.busy = true;
    try {
      return apdu(bytes);
    } finally {
      state.busy = false;
    }
  });
  return state;
}

const zero = (a: Uint8Array) => a.every((b) => b === 0);
const tempDir = () => mkdtempSync(join(tmpdir(), 'senv-residue-'));
const MASTER = new Uint8Array(32).fill(9);

describe('Mcs: no copy of a secret stays behind', () => {
  it('a data directory: the key material of every record, the plaintext it seals and the plaintext it unseals are zeroized', async () => {
    const dir = tempDir();
    try {
      const key = prng(701)(16);
      const stored: StoredKey[] = [];
      const storeKey = SoftwareBackend.prototype.storeKey;
      patch(SoftwareBackend.prototype, 'storeKey', async function (this: SoftwareBackend, k) {
        const s = await storeKey.call(this, k);
        stored.push(s);
        return s;
      });
      // And the key material each record gives back at open, decoded for the backend to load.
      const loaded: StoredKey[] = [];
      const loadKey = SoftwareBackend.prototype.loadKey;
      patch(SoftwareBackend.prototype, 'loadKey', async function (this: SoftwareBackend, spec, k) {
        loaded.push(k);
        return loadKey.call(this, spec, k);
      });
      // The sealed secrets are JSON holding `keyData`: the UTF-8 arrays made of it, and those read back.
      const sealedPlain: Uint8Array[] = [];
      const encode = TextEncoder.prototype.encode;
      patch(TextEncoder.prototype, 'encode', function (this: TextEncoder, text?: string) {
        const out = encode.call(this, text);
        if (text?.includes('"keyData"')) sealedPlain.push(out);
        return out;
      });
      const unsealedPlain: Uint8Array[] = [];
      const decode = TextDecoder.prototype.decode;
      patch(TextDecoder.prototype, 'decode', function (this: TextDecoder, input?: AllowSharedBufferSource, options?: TextDecodeOptions) {
        const text = decode.call(this, input, options);
        if (text.includes('"keyData"')) unsealedPlain.push(input as Uint8Array);
        return text;
      });

      const e1 = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1024, kDt: b64(key) } }), 2001, 'cipher with a key');
      // A change that sets a key writes the resource again, its key stored (an et UPDATE keeps the sealed part it wrote).
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'g', Calg: 1001, mbs: 1024 } }), 2001, 'cipher without a key');
      ok(await s.retrieve(s.path('reg', 'g', 'generateKey')), 2000, 'generateKey');
      await e1.close();
      expect(stored.length, 'storeKey was called').toBeGreaterThanOrEqual(2);
      for (const k of stored) expect(k.form === 'material' && zero(k.bytes), 'the stored key bytes are zeroized').toBe(true);
      expect(sealedPlain.length, 'secrets were sealed').toBeGreaterThanOrEqual(2);
      for (const p of sealedPlain) expect(zero(p), 'the plaintext sealed is zeroized').toBe(true);

      const e2 = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
      expect(unsealedPlain.length, 'secrets were unsealed').toBeGreaterThan(0);
      for (const p of unsealedPlain) expect(zero(p), 'the plaintext unsealed is zeroized').toBe(true);
      expect(loaded.length, 'keys were loaded').toBeGreaterThanOrEqual(2);
      for (const k of loaded) expect(k.form === 'material' && zero(k.bytes), 'the key bytes loaded are zeroized').toBe(true);
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a data directory: the copy of an operation\'s result that its record is written from is zeroized once written', async () => {
    const dir = tempDir();
    try {
      const e = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
      const rand = await (await new McsClient(e, 'CAE1').register('me')).rand({ rngType: 1 });
      // A result over 64 bytes is handed to the response; the store writes the record from a copy (slice()) of it.
      const made: [Uint8Array, unknown][] = [];
      watchNew((a, from) => made.push([a, from]));
      const got = await rand.generate(100);
      const copies = made.filter(([a, from]) => from === got && a.length === got.length).map(([a]) => a);
      expect(copies.length, 'the result was copied').toBeGreaterThan(0);
      for (const c of copies) expect(zero(c), 'a copy of the result').toBe(true);
      expect(zero(got), 'the result itself').toBe(false);
      await e.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a data directory: the copy of the message a chunk UPDATE with another attribute writes its record from is zeroized once written', async () => {
    const dir = tempDir();
    try {
      const e = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
      const s = new Session(e, 'CAE1');
      await s.register();
      const message = prng(721)(100);
      ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(message) } }), 2001, 'hash');
      // A chunk with an et is a put of the resource the change leaves: the store writes it from a copy of the message
      // (Accumulator.copy(); the data it holds, seen through a view of its buffer taken as it is made).
      const copies: Uint8Array[] = [];
      const copy = Accumulator.prototype.copy;
      patch(Accumulator.prototype, 'copy', function (this: Accumulator) {
        const c = copy.call(this);
        copies.push(c.bytes());
        return c;
      });
      ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: '', et: '20991231T000000' } }), 2004, 'an empty chunk and an et');
      expect(copies.filter((c) => c.length === message.length).length, 'the message was copied').toBeGreaterThan(0);
      for (const c of copies) expect(zero(c), 'a copy of the message').toBe(true);
      await e.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a data directory\'s compaction: the plaintext of the chunks it joins into one sealed chunk is zeroized', async () => {
    const dir = tempDir();
    try {
      const chunks = [prng(711)(100), prng(712)(100)];
      // A snapshot after every record: the second chunk's joins the two chunks into one.
      const e1 = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: MASTER, compactAt: 1 }) });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1024, kDt: b64(prng(713)(16)) } }), 2001, 'cipher');
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(chunks[0]!) } }), 2004, 'first chunk');
      const made = watchNew();
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(chunks[1]!) } }), 2004, 'second chunk');
      const chunkSized = made.filter((a) => a.length === 100);
      expect(chunkSized.length, 'the chunks were opened to be joined').toBeGreaterThanOrEqual(2);
      for (const a of chunkSized) expect(chunks.some((c) => c.every((b, i) => a[i] === b)), 'a chunk\'s plaintext left behind').toBe(false);
      await e1.close();
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
      const snapshot = readFileSync(join(dir, 'snapshot.json'), 'utf8');
      expect((snapshot.match(/"attr":"/g) ?? []).length, 'one sealed chunk').toBe(1);
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a data directory\'s compaction: the joined plaintext of short chunks is held outside the JS heap', async () => {
    const dir = tempDir();
    try {
      const e1 = await McsEngine.create({ store: await JournalStore.open({ dir, masterKey: MASTER, compactAt: 1 }) });
      const s = new Session(e1, 'CAE1');
      await s.register();
      ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1024, kDt: b64(prng(714)(16)) } }), 2001, 'cipher');
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(prng(715)(10)) } }), 2004, 'first chunk');
      // Arrays made by length: V8 keeps those of up to 64 bytes inside its heap; the two chunks join into 20 bytes.
      const joinedOnHeap: number[] = [];
      watchNew((_made, from) => from === 20 && joinedOnHeap.push(from));
      ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(prng(716)(10)) } }), 2004, 'second chunk');
      expect(joinedOnHeap, 'the joined plaintext made inside the JS heap').toEqual([]);
      await e1.close();
      const e2 = await McsEngine.create({ dataDir: dir, masterKey: MASTER });
      expect((readFileSync(join(dir, 'snapshot.json'), 'utf8').match(/"attr":"/g) ?? []).length, 'one sealed chunk').toBe(1);
      await e2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('<cipher> CBC decryption failing on its padding leaves none of its plaintext in the resource\'s output buffer', async () => {
    const rooms: Uint8Array[] = [];
    const room = Accumulator.prototype.room;
    patch(Accumulator.prototype, 'room', function (this: Accumulator, n: number) {
      const r = room.call(this, n);
      rooms.push(r);
      return r;
    });
    const rnd = prng(702);
    const key = rnd(16), iv = rnd(16);
    // The last byte (0) is no PKCS#7 padding: the decryption fails at its end.
    const plain = rnd(41008);
    plain[plain.length - 1] = 0;
    const enc = createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false);
    const ct = new Uint8Array(Buffer.concat([enc.update(plain), enc.final()]));
    const s = new Session(await McsEngine.create(), 'CAE1');
    await s.register();
    const c = s.path('reg', 'c');
    ok(await s.send(1, s.seId, { 'senv:Cph': { rn: 'c', Calg: 24, mbs: 1 << 20, kDt: key } }, 20002, true), 2001, 'CBC PKCS#7 cipher');
    ok(await s.send(1, c, { 'senv:algP': { iV: iv } }, 20001, true), 2001, 'IV');
    // A first decryption makes the next message stream for decryption.
    ok(await s.send(3, c, { 'senv:Cph': { msg: ct.subarray(0, 32) } }, undefined, true), 2004, 'two blocks');
    await s.retrieve(`${c}/decrypt`);
    // A batch (streamed at once), then the rest, which the operation's final call decrypts.
    ok(await s.send(3, c, { 'senv:Cph': { msg: ct.subarray(0, 40000) } }, undefined, true), 2004, 'a batch');
    ok(await s.send(3, c, { 'senv:Cph': { msg: ct.subarray(40000) } }, undefined, true), 2004, 'the rest');
    fails(await s.retrieve(`${c}/decrypt`), 4102, 'bad padding');
    expect(rooms.length, 'the stream wrote into the resource\'s buffer').toBeGreaterThan(0);
    // The start of the plaintext (decrypted as the batch arrived) and the last batch's.
    for (const part of [plain.subarray(0, 64), plain.subarray(40048, 40304)]) {
      for (const buffer of new Set(rooms.map((r) => r.buffer))) {
        expect(holds(new RealUint8Array(buffer), part), 'plaintext of the failed decryption').toBe(false);
      }
    }
    await s.engine.close();
  });

  it('a message that outgrows its buffer: each buffer it leaves behind is zeroized as it moves to a larger one', async () => {
    const spaces: Uint8Array[] = [];
    const spaceFor = Accumulator.prototype.spaceFor;
    patch(Accumulator.prototype, 'spaceFor', function (this: Accumulator, chunk: Uint8Array | null | undefined, restart?: boolean) {
      const space = spaceFor.call(this, chunk, restart);
      spaces.push(space);
      return space;
    });
    const s = new Session(await McsEngine.create(), 'CAE1');
    await s.register();
    const h = s.path('reg', 'h');
    ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
    const rnd = prng(704);
    const chunks = [rnd(100), rnd(100), rnd(300)];
    for (const msg of chunks) ok(await s.send(3, h, { 'senv:Hsh': { msg } }, undefined, true), 2004, `a chunk of ${msg.length}`);
    const buffers = new Set(spaces.map((b) => b.buffer));
    expect(buffers.size, 'the data moved to a larger buffer twice').toBe(3);
    // The discard zeroizes the buffer in use; the ones left before must have been zeroized when they were left.
    ok(await s.update(h, { 'senv:Hsh': { msg: null } }), 2004, 'discard');
    for (const buffer of buffers) expect(holds(new RealUint8Array(buffer), chunks[0]!.subarray(0, 16)), 'the first chunk').toBe(false);
    await s.engine.close();
  });

  it('a short message and its result are held outside the JS heap (a garbage collection moves a small array there, leaving its bytes behind)', async () => {
    const s = new Session(await McsEngine.create(), 'CAE1');
    await s.register();
    const rnd = prng(703);
    const c = s.path('reg', 'c'), h = s.path('reg', 'h');
    ok(await s.send(1, s.seId, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1 << 20, kDt: rnd(16) } }, 20002, true), 2001, 'GCM cipher');
    ok(await s.send(1, c, { 'senv:algP': { nc: rnd(12) } }, 20001, true), 2001, 'nonce');
    ok(await s.send(1, s.seId, { 'senv:Hsh': { rn: 'h', Halg: 4 } }, 20004, true), 2001, 'hash');
    const msg = rnd(24), toHash = rnd(20);
    // Arrays made by length: V8 keeps those of up to 64 bytes inside its heap.
    const onHeap: number[] = [];
    watchNew((_made, from) => typeof from === 'number' && from > 0 && from <= 64 && onHeap.push(from));
    ok(await s.send(3, c, { 'senv:Cph': { msg } }, undefined, true), 2004, 'a 24-byte message');
    ok(await s.send(2, `${c}/encrypt`, undefined, undefined, true), 2000, 'its 40-byte result');
    ok(await s.send(3, h, { 'senv:Hsh': { msg: toHash } }, undefined, true), 2004, 'a 20-byte message to hash');
    expect(onHeap, 'lengths of the arrays made inside the JS heap').toEqual([]);
    await s.engine.close();
  });

  it('a request that waits for its turn: the copies of its byte values (a key) are zeroized once served, and when its rqet passed while it waited', async () => {
    const s = new Session(await McsEngine.create(), 'CAE1');
    await s.register();
    ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: 8 } }), 2001, 'rand');
    // The request ahead holds the SE for 100 ms, or until `held` settles: the request behind whose rqet
    // must pass while it waits is let through only once it was answered (20 s at most, which only an
    // rqet never applied reaches), not raced against a fixed hold a loaded machine may outlast.
    let held: Promise<unknown> | undefined;
    const random = SoftwareBackend.prototype.random;
    patch(SoftwareBackend.prototype, 'random', async function (this: SoftwareBackend, type: RngType, length: number) {
      await (held ?? new Promise((r) => setTimeout(r, 100)));
      return random.call(this, type, length);
    });
    const rnd = prng(703);
    // The arrays each key the test passes was copied into: outside the JS heap (set into an array of
    // their own buffer), none made from the key by the constructor (inside it, for 64 bytes or fewer).
    const copies = new Map<unknown, Uint8Array[]>();
    const onHeap: unknown[] = [];
    watchNew((_made, from) => copies.has(from) && onHeap.push(from));
    const sets = watchSets((src) => [...copies.keys()].some((k) => k instanceof RealUint8Array && k.buffer === src.buffer && k.byteOffset === src.byteOffset));
    const waitFor = async (req: Record<string, unknown>, key: Uint8Array, holdUntilAnswered = false) => {
      copies.set(key, []);
      sets.length = 0;
      let answered!: () => void;
      let cap: ReturnType<typeof setTimeout> | undefined;
      held = holdUntilAnswered ? Promise.race([new Promise<void>((r) => (answered = r)), new Promise((r) => (cap = setTimeout(r, 20_000)))]) : undefined;
      const ahead = s.retrieve(s.path('reg', 'r', 'gnR'));
      const r = await s.engine.send({ op: 1, to: s.seId, fr: 'CAE1', rqi: 'q', rvi: '3', ty: 20002, ...req }, { binary: true });
      answered?.();
      clearTimeout(cap);
      held = undefined;
      ok(await ahead, 2000, 'the request ahead');
      return { r, copies: sets.filter((_, i) => i % 2 === 0) };
    };
    const served = rnd(16);
    const a = await waitFor({ pc: { 'senv:Cph': { rn: 'c1', Calg: 1001, mbs: 1024, kDt: served } } }, served);
    ok(a.r, 2001, 'served after the request ahead');
    expect(a.copies, 'the waiting request\'s key was copied').toHaveLength(1);
    expect(zero(a.copies[0]!), 'and the copy zeroized').toBe(true);
    expect(zero(served), 'the caller\'s own array is left alone').toBe(false);
    const late = rnd(16);
    const b = await waitFor({ rqet: 20, pc: { 'senv:Cph': { rn: 'c2', Calg: 1001, mbs: 1024, kDt: late } } }, late, true);
    fails(b.r, 4008, 'expired while it waited');
    expect(b.copies).toHaveLength(1);
    expect(zero(b.copies[0]!), 'the expired request\'s copy zeroized').toBe(true);
    expect(onHeap, 'copies made inside the JS heap').toEqual([]);
    await s.engine.close();
  });

  it('a master key file: its text is zeroized, and a key of the wrong length decoded from it', async () => {
    const dir = tempDir();
    try {
      const keyHex = Buffer.from(prng(703)(32)).toString('hex');
      const text = new TextEncoder().encode(keyHex);
      writeFileSync(join(dir, 'master.key'), `${keyHex}\n`, { mode: 0o600 });
      // The arrays the text was read into: node:fs's Buffer and the copy made of it (outside the JS heap).
      const onHeap: Uint8Array[] = [];
      const made = watchNew((copy, from) => {
        if (from instanceof RealUint8Array && holds(from, text)) onHeap.push(copy);
      });
      const reads = watchSets((src) => holds(src, text));
      const e = await McsEngine.create({ dataDir: join(dir, 'data'), masterKeyFile: join(dir, 'master.key') });
      await e.close();
      expect(reads.length, 'the key file was read').toBeGreaterThan(0);
      for (const r of reads) expect(zero(r), 'the key file\'s text is zeroized').toBe(true);
      expect(onHeap, 'copies of the text inside the JS heap').toEqual([]);

      const tooLong = prng(704)(33);
      writeFileSync(join(dir, 'long.key'), `${b64(tooLong)}\n`, { mode: 0o600 });
      made.length = 0;
      await expect(McsEngine.create({ dataDir: join(dir, 'data2'), masterKeyFile: join(dir, 'long.key') })).rejects.toThrow(/32-byte/);
      expect(made.filter((a) => a.length === 33).length, 'the key was decoded').toBeGreaterThan(0);
      expect(made.some((a) => holds(a, tooLong)), 'the refused key is zeroized').toBe(false);

      // 32 bytes of text are refused as ambiguous before any decoding: what was read of them is zeroized all the same.
      const ambiguous = new TextEncoder().encode(`${keyHex.slice(0, 31)}\n`);
      writeFileSync(join(dir, 'short.key'), ambiguous, { mode: 0o600 });
      const shortReads = watchSets((src) => holds(src, ambiguous));
      await expect(McsEngine.create({ dataDir: join(dir, 'data4'), masterKeyFile: join(dir, 'short.key') })).rejects.toThrow(/ambiguous/);
      expect(shortReads.length, 'the ambiguous key file was read').toBeGreaterThan(0);
      for (const r of shortReads) expect(zero(r), 'the ambiguous text is zeroized').toBe(true);

      // A UTF-8 byte order mark is cut from the bytes: left on, it would send the text through a string, which nothing can zeroize.
      writeFileSync(join(dir, 'bom.key'), `\uFEFF${keyHex}\n`, { mode: 0o600 });
      const decoded: Uint8Array[] = [];
      const decode = TextDecoder.prototype.decode;
      patch(TextDecoder.prototype, 'decode', function (this: TextDecoder, input?: AllowSharedBufferSource, options?: TextDecodeOptions) {
        if (input instanceof RealUint8Array && holds(input, text)) decoded.push(input);
        return decode.call(this, input, options);
      });
      await (await McsEngine.create({ dataDir: join(dir, 'data'), masterKeyFile: join(dir, 'bom.key') })).close();
      expect(decoded, 'key text decoded into a string').toEqual([]);

      // A raw key file: 32 binary bytes, read into memory outside the JS heap and zeroized once used.
      const raw = Uint8Array.from(prng(706)(32), (b) => b | 0x80);
      writeFileSync(join(dir, 'raw.key'), raw, { mode: 0o600 });
      const rawReads = watchSets((src) => holds(src, raw));
      const rawOnHeap: Uint8Array[] = [];
      const derived = createHmac('sha256', raw).update('senv journal mac').digest();
      // A copy made inside the JS heap: by length or from other bytes (a view over a buffer is no copy).
      watchNew((copy, from) => copy.length <= 64 && !(from instanceof ArrayBuffer) && (holds(copy, raw) || holds(copy, derived)) && rawOnHeap.push(copy));
      await (await McsEngine.create({ dataDir: join(dir, 'data3'), masterKeyFile: join(dir, 'raw.key') })).close();
      expect(rawReads.length, 'the raw key file was read').toBeGreaterThan(0);
      // (Into the core's memory too, to derive the store's keys: no copy may still hold it.)
      for (const r of rawReads) expect(holds(r, raw), 'the raw key is zeroized').toBe(false);
      expect(rawOnHeap, 'copies of the raw key, or of the journal key derived from it, inside the JS heap').toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a key or a secret value in invalid base64 is refused without leaving the bytes decoded before the bad character', async () => {
    const key = prng(705)(32), sig = prng(707)(64);
    const good = b64(key);
    const bad = `${good.slice(0, 40)}AA!=`;
    const s = new Session(await McsEngine.create(), 'CAE1');
    await s.register();
    const made = watchNew();
    fails(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1002, mbs: 64, kDt: bad } }), 4000, 'bad base64', /base64/);
    expect(made.filter((a) => a.length === 32).length, 'the text was decoded').toBeGreaterThan(0);
    expect(made.some((a) => holds(a, key.subarray(0, 30))), 'the decoded part is zeroized').toBe(false);
    // A secret value that is no key is read by table (fromBase64), not by keyFromBase64: a signature given to be verified.
    fails(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'v', Salg: 33, Sgn: `${b64(sig).slice(0, 84)}AA!=` } }), 4000, 'bad base64 signature', /base64/);
    expect(made.some((a) => holds(a, sig.subarray(0, 60))), 'the decoded part of the signature is zeroized').toBe(false);
    await s.engine.close();
  });

  it('a value over maxDataSize is refused before the engine copies or decodes it', async () => {
    const maxDataSize = 64;
    const rnd = prng(706);
    const s = new Session(await McsEngine.create({ maxDataSize }), 'CAE1');
    await s.register();
    const hmacKey = rnd(maxDataSize + 1), data = rnd(maxDataSize + 1), base64Key = rnd(maxDataSize + 1);
    const made = watchNew();
    // A view of the caller's own memory (the engine reads byte values through one) is not a copy.
    const copiesOf = (secret: Uint8Array) => made.filter((a) => a.length > 0 && a.buffer !== secret.buffer && holds(a, secret));
    fails(await s.send(1, s.seId, { 'senv:Sgn': { rn: 's1', Salg: 25, kDt: hmacKey } }, 20012, true), 5207, 'binary kDt', /exceeds 64 bytes/);
    expect(copiesOf(hmacKey).length, 'no copy of the key').toBe(0);
    fails(await s.send(1, s.seId, { 'senv:Sdo': { rn: 'd1', msg: data } }, 20009, true), 5207, 'binary sensitive data', /exceeds 64 bytes/);
    expect(copiesOf(data).length, 'no copy of the data').toBe(0);
    fails(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 's2', Salg: 25, kDt: b64(base64Key) } }), 5207, 'base64 kDt', /exceeds 64 bytes/);
    expect(copiesOf(base64Key).length, 'nothing decoded').toBe(0);
    // Exactly the limit is accepted.
    ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 's3', Salg: 25, kDt: b64(base64Key.subarray(0, maxDataSize)) } }), 2001, 'kDt of maxDataSize');
    // The size is read from the text's whole groups (base64Length): a text whose length alone makes it no base64, its
    // whole groups holding 63 bytes, is told as what it is (4000), not as a size it does not have (66 bytes, 5207).
    fails(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 's4', Salg: 25, kDt: `${b64(base64Key.subarray(0, maxDataSize - 1))}A` } }), 4000, 'kDt of bad length', /base64/);
    await s.engine.close();
  });

  it('McsClient\'s copies of a chunk and of sensitive data are made outside the JS heap, and zeroized once sent', async () => {
    const engine = await McsEngine.create();
    const me = await new McsClient(engine, 'CAE1').register('me');
    const rnd = prng(707);
    const h = await me.hash({ algorithm: 4 });
    const sdo = await me.sensitiveData(rnd(8));
    const chunk = rnd(24), data = rnd(40);
    const onHeap: Uint8Array[] = [];
    watchNew((copy, from) => copy.length <= 64 && !(from instanceof ArrayBuffer) && (holds(copy, chunk) || holds(copy, data)) && onHeap.push(copy));
    const copies = watchSets((src) => holds(src, chunk) || holds(src, data));
    await h.update(chunk);
    await sdo.write(data);
    expect(await h.calculate()).toEqual(new RealUint8Array(createHash('sha256').update(chunk).digest()));
    await h.delete();
    await sdo.delete();
    expect(copies.length, 'the values were copied').toBeGreaterThan(0);
    // Once the resources are gone, no copy holds them (the caller's own arrays, and views of them, aside).
    const mine = (c: Uint8Array) => c.buffer === chunk.buffer || c.buffer === data.buffer;
    for (const c of copies) if (!mine(c)) expect(holds(c, chunk) || holds(c, data), `a copy of ${c.length} bytes zeroized`).toBe(false);
    expect(onHeap, 'copies inside the JS heap').toEqual([]);
    await engine.close();
  });

  it('McsClient zeroizes the CREATE responses it keeps only the address of', async () => {
    const engine = await McsEngine.create();
    const responses: unknown[] = [];
    const send = engine.send.bind(engine);
    patch(engine, 'send', async (req, opts) => {
      const r = await send(req, opts);
      responses.push(r);
      return r;
    });
    const me = await new McsClient(engine, 'CAE1').register('me');
    const rnd = prng(707);
    const echoed = () => responses.flatMap((r) => Object.values((r as { pc?: Record<string, Record<string, unknown>> }).pc ?? {}))
      .flatMap((body) => Object.values(body)).filter((v): v is Uint8Array => v instanceof RealUint8Array);
    await me.cipher({ algorithm: 1001, maxByteSize: 1024, key: rnd(16), exportable: true, name: 'c' });
    await me.signature({ algorithm: 25, key: rnd(32), exportable: true, name: 's' });
    await me.sensitiveData(rnd(64), 'd');
    // The key of each exportable resource, and the data echoed by <sensitiveDataObject>.
    expect(echoed().length).toBe(3);
    for (const v of echoed()) expect(zero(v), 'a response\'s copy is zeroized').toBe(true);
    await engine.close();
  });

  it('<rand> over 64 KiB: the DRBG pieces the result is assembled from are zeroized', async () => {
    const N = 100000;
    const pieces: Uint8Array[] = [];
    const set = RealUint8Array.prototype.set;
    patch(RealUint8Array.prototype, 'set', function (this: Uint8Array, source: ArrayLike<number>, offset?: number) {
      if (this.length === N && source instanceof RealUint8Array && source.length < N) pieces.push(source);
      return set.call(this, source, offset);
    } as typeof RealUint8Array.prototype.set);
    const s = new Session(await McsEngine.create(), 'CAE1');
    await s.register();
    ok(await s.create(s.seId, 20007, { 'senv:Rnd': { rn: 'r', rgT: 1, Dsz: N } }), 2001, 'rand');
    ok(await s.send(2, s.path('reg', 'r', 'generateRand'), undefined, undefined, true), 2000, 'generateRand');
    expect(pieces.length, 'the result came in pieces').toBeGreaterThan(1);
    for (const p of pieces) expect(zero(p), 'a piece is zeroized').toBe(true);
    await s.engine.close();
  });
});

describe('software SE: a released key leaves nothing; an unknown rngType is refused', () => {
  it('a software cipher stream that ends with data zeroizes the pieces it joined into its result', async () => {
    const se = new SoftwareBackend();
    await se.open();
    const rnd = prng(703);
    const key = rnd(16), iv = rnd(16), plain = rnd(40);
    const enc = createCipheriv('aes-128-cbc', key, iv);
    const ct = new Uint8Array(Buffer.concat([enc.update(plain), enc.final()]));
    const k = await se.importKey({ use: 'cipher', algorithm: 24 }, 'secret', key);
    const s = se.cipher(24, k, 'decrypt', { iv });
    expect((await s.update(ct.subarray(0, 16))).length, 'decryption keeps its last block back').toBe(0);
    const made = watchNew();
    // The last chunk's output (the first two blocks) and what finishing gave (the unpadded third) are joined.
    const out = await s.final(ct.subarray(16));
    expect(Buffer.from(out).equals(Buffer.from(plain))).toBe(true);
    for (const [what, part] of [['the last chunk\'s output', plain.subarray(0, 32)], ['the final block', plain.subarray(32)]] as const) {
      expect(made.filter((a) => a.buffer !== out.buffer && holds(new RealUint8Array(a.buffer), part)).length, what).toBe(0);
    }
    await se.close();
  });

  it('generateKey zeroizes the bytes it drew once the key holds its own copy (random and ECDSA keys)', async () => {
    const se = new SoftwareBackend();
    await se.open();
    const made = watchNew();
    for (const spec of [{ use: 'cipher', algorithm: 1002 }, { use: 'signature', algorithm: 33 }] as const) {
      const held = ((await se.generateKey(spec)) as SoftwareKey).bytes;
      const copies = made.filter((a) => a.buffer !== held.buffer && a.buffer.byteLength <= 4096 && holds(new RealUint8Array(a.buffer), held));
      expect(copies.length, `${spec.use} ${spec.algorithm}`).toBe(0);
    }
    await se.close();
  });

  it('an aborted stream frees its core context: no piece of its message stays in WASM memory or in an array it collected', async () => {
    const se = new SoftwareBackend();
    await se.open();
    const rnd = prng(711);
    const aesKey = rnd(16), nonce = rnd(12), iv = rnd(16);
    const signing = (algorithm: SignatureAlgorithm, key: Uint8Array | undefined, prehashed: boolean) => async () => {
      const k = key ? await se.importKey({ use: 'signature', algorithm }, 'secret', key) : await se.generateKey({ use: 'signature', algorithm });
      return { stream: se.signature(algorithm, k, { format: 'raw', prehashed }), key: k };
    };
    const ciphering = (algorithm: CipherAlgorithm, direction: 'encrypt' | 'decrypt', params: CipherParams) => async () => {
      const k = await se.importKey({ use: 'cipher', algorithm }, 'secret', aesKey);
      return { stream: se.cipher(algorithm, k, direction, params), key: k };
    };
    // The part each stream is fed, and what of it must not stay: the part itself, or the plaintext it decrypts to.
    const gcmPlain = rnd(12);
    const gcmPart = createCipheriv('aes-128-gcm', aesKey, nonce).update(gcmPlain);
    const cases: [string, () => Promise<{ stream: { update(d: Uint8Array): Promise<unknown>; abort(): void }; key?: KeyHandle }>, Uint8Array, Uint8Array?][] = [
      ['HMAC-SHA-256 (the part waits in its hash\'s block)', signing(25, rnd(32), false), rnd(12)],
      ['AES-CMAC (a partial block)', signing(49, aesKey, false), rnd(12)],
      ['CBC-MAC', signing(18, aesKey, false), rnd(12)],
      ['ECDSA P-256 hashing the message', signing(33, undefined, false), rnd(12)],
      ['ECDSA over the caller\'s digest (collected)', signing(33, undefined, true), rnd(12)],
      ['SHA-256', async () => ({ stream: se.digest(4) }), rnd(12)],
      ['CBC encryption (a partial block)', ciphering(13, 'encrypt', { iv }), rnd(12)],
      ['GCM decryption (plaintext held until the tag)', ciphering(1001, 'decrypt', { nonce }), new Uint8Array(gcmPart), gcmPlain],
    ];
    for (const [what, open, part, secret = part] of cases) {
      const { stream, key } = await open();
      const made = watchNew();
      await stream.update(part);
      stream.abort();
      expect(holds(core().mem(), secret), `${what}: in WASM memory`).toBe(false);
      // Views of the caller's own array (a subarray to feed it) are not copies.
      expect(made.filter((a) => a.buffer !== part.buffer && holds(new RealUint8Array(a.buffer), secret)).length, `${what}: in an array`).toBe(0);
      if (key) se.releaseKey(key);
    }
    await se.close();
  });

  it('releaseKey zeroizes the key\'s private copy of its material', async () => {
    const se = new SoftwareBackend();
    await se.open();
    const material = new Uint8Array(32).fill(0x5c);
    const key = await se.importKey({ use: 'cipher', algorithm: 1002 }, 'secret', material);
    const held = (key as SoftwareKey).bytes;
    expect(held).not.toBe(material);
    expect(held.every((b) => b === 0x5c)).toBe(true);
    se.releaseKey(key);
    expect(held.every((b) => b === 0), 'the private copy is zeroized').toBe(true);
    expect(material.every((b) => b === 0x5c), 'the caller\'s array is the caller\'s').toBe(true);
    // Only TS-0016's two rngTypes exist.
    await expect(se.random(3 as RngType, 8)).rejects.toMatchObject({ name: 'UnknownAlgorithmError', message: expect.stringMatching(/rngType 3/) });
    await se.close();
  });
});

describe('PC/SC SE (in-process card): no copy of a secret stays behind, nor shows in the APDU log', () => {
  it('PC/SC: the public key a handle gives is a copy; the host\'s copies of an ECDSA message are zeroized however the stream ends', async () => {
    const reader = new InProcessReader();
    const b = reader.backend();
    await b.open();
    const k = await b.generateKey({ use: 'signature', algorithm: 33 });
    const point = (await b.publicKey(k))!;
    const kept = hex(point);
    point.fill(0);
    expect(hex((await b.publicKey(k))!), 'the handle\'s point unchanged by the caller').toBe(kept);
    // The host collects and hashes an ECDSA message: its copies go however the stream ends.
    const msg = prng(715)(33);
    const ends: [string, boolean, (s: SignatureStream) => Promise<unknown>][] = [
      ['a prehashed message of the wrong length', true, (s) => expect(s.sign(msg.subarray(20))).rejects.toThrow(/32-byte SHA-256 digest, got 33 bytes/)],
      ['signed', false, async (s) => s.sign(msg.subarray(20))],
      ['a signature longer than any', false, async (s) => expect(await s.verify(new Uint8Array(200), msg.subarray(20))).toBe(false)],
      ['aborted', false, async (s) => s.abort()],
    ];
    for (const [what, prehashed, end] of ends) {
      const made = watchNew();
      const s = await b.signature(33, k, { format: 'raw', prehashed });
      await s.update(msg.subarray(0, 20));
      await end(s);
      const copies = made.filter((a) => a.buffer !== msg.buffer && holds(new RealUint8Array(a.buffer), msg.subarray(0, 12)));
      expect(copies.filter((a) => !zero(new RealUint8Array(a.buffer))).length, `${what}: a copy of the message left`).toBe(0);
    }
    await b.close();
  });

  it('PC/SC: random bytes the card answered are zeroized where they arrived once copied into the result', async () => {
    const reader = new InProcessReader(SHORT_LIMITS);
    const b = reader.backend();
    await b.open();
    const answers: Uint8Array[] = [];
    reader.intercept = (apdu) => (apdu[1] === 0x84 ? (answers.push(reader.os.apdu(apdu)), answers.at(-1)) : undefined);
    const out = await b.random(1, 600);
    reader.intercept = undefined;
    expect(answers.map((a) => a.length - 2), 'three GET CHALLENGEs').toEqual([256, 256, 88]);
    expect(answers.every((a) => zero(a.subarray(0, -2))), 'the answers zeroized').toBe(true);
    expect(zero(out), 'the result is not').toBe(false);
    await b.close();
  });

  it('PC/SC: a stream whose final() finds the session closed zeroizes the message it buffered', async () => {
    const reader = new InProcessReader();
    const b = reader.backend();
    await b.open();
    const msg = prng(713)(40);
    const made = watchNew();
    const d = await b.digest(4);
    await d.update(msg);
    const copies = made.filter((a) => a.buffer !== msg.buffer && holds(new RealUint8Array(a.buffer), msg));
    expect(copies.length, 'the stream holds its own copy').toBeGreaterThan(0);
    await b.close();
    await expect(d.final()).rejects.toThrow(/closed/);
    expect(copies.every(zero), 'zeroized').toBe(true);
  });

  it('PC/SC: an environment the card already holds is not sent again, and the MSE:SET data built for it (the IV) is zeroized; one replaced by another IV is zeroized then', async () => {
    const reader = new InProcessReader();
    const b = reader.backend();
    await b.open();
    const rnd = prng(714);
    const iv = rnd(16), other = rnd(16), msg = rnd(32);
    const k = await b.importKey({ use: 'cipher', algorithm: 13 }, 'secret', rnd(16));
    const encrypt = async (v: Uint8Array) => (await b.cipher(13, k, 'encrypt', { iv: v })).final(msg);
    const card = watchCard(reader);
    const made: Uint8Array[] = [];
    watchNew((a) => void (card.busy || made.push(a)));
    // By buffer (a view over one counts with it); the reader's record of what was sent stands for the card's side.
    const copies = () => [...new Set(made.filter((a) => !reader.sent.includes(a)).map((a) => a.buffer))]
      .map((buf) => new RealUint8Array(buf)).filter((a) => a.buffer !== iv.buffer && holds(a, iv));
    const first = await encrypt(iv);
    expect(copies().filter((a) => !zero(a)).length, 'the environment in force, remembered').toBe(1);
    const mark = reader.sent.length;
    expect(await encrypt(iv)).toEqual(first);
    expect(reader.sent.slice(mark).filter((a) => a[1] === 0x22).length, 'no MSE:SET').toBe(0);
    expect(copies().filter((a) => !zero(a)).length, 'only the one remembered: the data built again is zeroized').toBe(1);
    await encrypt(other);
    expect(copies().filter((a) => !zero(a)).length, 'replaced: zeroized').toBe(0);
    await b.close();
  });

  it('PC/SC: keys and messages of 64 bytes or less are never copied into an array inside the JS heap (V8 leaves its bytes behind when it moves one)', async () => {
    const rnd = prng(709);
    const reader = new InProcessReader();
    const b = reader.backend();
    await b.open();
    const aesKey = rnd(16), hmacKey = rnd(32), msg = rnd(40), digest = rnd(32), data = rnd(40), tag = rnd(32);
    const secrets = [aesKey, hmacKey, msg, digest, data, tag].map((x) => x.subarray(0, 12));
    const card = watchCard(reader);
    // Arrays the host makes inside the heap: of 64 bytes or less, by length or as a copy (a view over a buffer is neither).
    const inHeap = new WeakSet<Uint8Array>();
    const found: string[] = [];
    const copies: Uint8Array[] = [];
    const secretIn = (a: ArrayLike<number>) => secrets.some((x) => holds(a as Uint8Array, x));
    watchNew((made, from) => {
      if (card.busy || made.length === 0 || made.length > 64 || from instanceof ArrayBuffer) return;
      inHeap.add(made);
      if (secretIn(made)) copies.push(made);
    });
    const set = RealUint8Array.prototype.set;
    patch(RealUint8Array.prototype, 'set', function (this: Uint8Array, src: ArrayLike<number>, offset?: number) {
      if (!card.busy && inHeap.has(this) && src instanceof RealUint8Array && secretIn(src)) found.push(`set into ${this.length} bytes`);
      return set.call(this, src, offset);
    });
    const nonce = rnd(12);
    const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', aesKey);
    const c = await b.cipher(1001, k, 'encrypt', { nonce });
    await c.update(msg.subarray(0, 16));
    const sealed = await c.final(msg.subarray(16));
    const h = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', hmacKey);
    const mac = await b.signature(25, h, { format: 'raw', prehashed: false });
    await mac.update(msg.subarray(0, 16));
    expect(await mac.sign(msg.subarray(16))).toEqual(new RealUint8Array(createHmac('sha256', hmacKey).update(msg).digest()));
    expect(await (await b.signature(25, h, { format: 'raw', prehashed: false })).verify(tag, msg)).toBe(false);
    await (await b.digest(4)).final(msg);
    const e = await b.generateKey({ use: 'signature', algorithm: 33 });
    await (await b.signature(33, e, { format: 'raw', prehashed: true })).sign(digest);
    await b.objectStore.write('d', data);
    expect(await b.objectStore.read('d')).toEqual(data);
    const d = await b.cipher(1001, k, 'decrypt', { nonce });
    expect(await d.final(sealed)).toEqual(msg);
    await b.close();
    // The reader's record of what was sent stands for the native bridge's own copy (the card's side).
    for (const c of copies) if (!reader.sent.includes(c)) found.push(`a copy of ${c.length} bytes`);
    expect(found).toEqual([]);
  });

  it('imported keys and messages: the commands carrying them are zeroized once sent, and logged as lengths', async () => {
    const rnd = prng(708);
    const reader = new InProcessReader();
    const lines: string[] = [];
    const b = reader.backend((line) => lines.push(line));
    await b.open();
    // `tag`: a candidate MAC to verify, as secret as a MAC over a secret message.
    const aesKey = rnd(16), hmacKey = rnd(32), msg = rnd(300), digest = rnd(32), tag = rnd(32);
    const secrets = [aesKey, hmacKey, msg, digest, tag];
    // What the backend hands the APDU stack, and the encoded commands that reach the card.
    const commands: Uint8Array[] = [];
    const transmit = AppletChannel.prototype.transmit;
    patch(AppletChannel.prototype, 'transmit', function (this: AppletChannel, cmd: CommandApdu) {
      if (cmd.data && secrets.some((x) => holds(cmd.data!, x))) commands.push(cmd.data);
      return transmit.call(this, cmd);
    });
    const wire: Uint8Array[] = [];
    reader.intercept = (apdu) => {
      if (secrets.some((x) => holds(apdu, x))) wire.push(apdu);
      return undefined;
    };
    // Every array the host side makes meanwhile (the card's own copies are the device's business).
    const card = watchCard(reader);
    const hostArrays: Uint8Array[] = [];
    watchNew((made) => {
      if (!card.busy) hostArrays.push(made);
    });

    const k = await b.importKey({ use: 'cipher', algorithm: 1001 }, 'secret', aesKey);
    await (await b.cipher(1001, k, 'encrypt', { nonce: rnd(12) })).final(msg);
    const h = await b.importKey({ use: 'signature', algorithm: 25 }, 'secret', hmacKey);
    await (await b.signature(25, h, { format: 'raw', prehashed: false })).sign(msg);
    expect(await (await b.signature(25, h, { format: 'raw', prehashed: false })).verify(tag, msg)).toBe(false);
    await (await b.digest(4)).final(msg);
    const e = await b.generateKey({ use: 'signature', algorithm: 33 });
    await (await b.signature(33, e, { format: 'raw', prehashed: true })).sign(digest);
    await b.close();

    expect(commands.length, 'commands carried the secrets').toBeGreaterThanOrEqual(7);
    for (const c of commands) expect(zero(c), 'a command\'s data is zeroized once sent').toBe(true);
    expect(wire.length).toBe(commands.length);
    for (const w of wire) expect(zero(w), 'an encoded command is zeroized once sent').toBe(true);
    // The reader's record of what was sent stands for the native bridge's own copy (the card's side);
    // a view of the caller's own array (an argument check's) is no copy.
    const host = hostArrays.filter((a) => !reader.sent.includes(a) && !secrets.some((x) => x.buffer === a.buffer));
    for (const x of secrets) expect(host.filter((a) => holds(a, x)).map((a) => a.length), `a host copy of ${x.length} secret bytes`).toEqual([]);
    const log = lines.join('\n');
    for (const x of secrets) expect(log.includes(hex(x)), `the log shows ${x.length} secret bytes`).toBe(false);
    expect(log).toMatch(/bytes masked/);
  });
});
