// McsClient's options and methods that the conformance walk-through
// (test/portable/mcs.ts) leaves unexercised: each must reach the primitive
// it stands for (name, expirationTime, rngType, format, prehashed, aad
// alone), discard() on every message type, a policy's partial update, and
// the zeroization of the copies the client makes of its byte arguments.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CipherResource, ecdsa, gcm, hash, hmac, HashResource, InvalidInputError, McsClient, McsEngine, RandResource, SensitiveDataResource, SignatureResource, SoftwareBackend, type AccessRule, type McsResponse, type ObjectStore } from '../../src/index.ts';
import { fromBase64, parseTimestamp, toBase64 } from '../../src/mcs/codec.ts';
import { arraysMadeBy } from './uint8array-spy.ts';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const engines: McsEngine[] = [];
afterEach(async () => {
  while (engines.length) await engines.pop()!.close();
});

async function client(originator = 'CAE1', name = 'me'): Promise<McsClient> {
  const engine = await McsEngine.create();
  engines.push(engine);
  return new McsClient(engine, originator).register(name);
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
const KEY = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);

describe('McsClient: the factories\' common options reach the CREATE', () => {
  it('name: the resource is named (and addressable) by it, for the factories and sensitiveData(data, name)', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4, name: 'digest' });
    expect((await h.retrieve()).rn).toBe('digest');
    const d = await c.sensitiveData(utf8('secret'), 'vault');
    expect((await d.retrieve()).rn).toBe('vault');
    const byName = await c.request(2, `${c.seId}/me/vault`, 'senv:Sdo');
    expect(hexOf(byName.msg as Uint8Array)).toBe(hexOf(utf8('secret')));
  });

  it('expirationTime: set as et at CREATE, and the resource is gone once it passed', async () => {
    let now = Date.UTC(2026, 10, 22, 12, 0, 0);
    const engine = await McsEngine.create({ clock: () => now });
    engines.push(engine);
    const c = await new McsClient(engine, 'CAE1').register('me');
    const h = await c.hash({ algorithm: 4, expirationTime: '20261122T120100' });
    expect((await h.retrieve()).et).toBe('20261122T120100,000000');
    now += 61_000;
    const gone = await h.retrieve().then(() => undefined, (e: unknown) => e);
    expect(gone).toMatchObject({ rsc: 4004 });
  });
});

describe('McsClient: each type\'s own options', () => {
  it('rand({ rngType: 2 }) creates a <rand> of rngType 2', async () => {
    const c = await client();
    const r = await c.rand({ rngType: 2 });
    expect((await r.retrieve()).rgT).toBe(2);
    expect((await r.generate(20)).length).toBe(20);
  });

  it('signature format: raw gives r || s of fixed length, the default DER', async () => {
    const c = await client();
    const msg = utf8('format');
    const raw = await c.signature({ algorithm: 33, format: 'raw' });
    const pub = (await raw.generateKey()).publicKey!;
    await raw.update(msg);
    const rs = await raw.sign();
    expect(rs.length).toBe(64);
    expect(ecdsa('P-256').verify(rs, msg, pub, { format: 'raw' })).toBe(true);
    const der = await c.signature({ algorithm: 33 });
    const pub2 = (await der.generateKey()).publicKey!;
    await der.update(msg);
    const sig = await der.sign();
    expect(sig[0]).toBe(0x30);
    expect(ecdsa('P-256').verify(sig, msg, pub2)).toBe(true);
  });

  it('the constructor refuses what is no engine, originator or M2M-SE-ID with an InvalidInputError', async () => {
    const engine = await McsEngine.create();
    engines.push(engine);
    for (const [what, make] of [
      ['no engine', () => new McsClient(undefined as never, 'CAE1')],
      ['an object that is no engine', () => new McsClient({} as never, 'CAE1')],
      ['no originator', () => new McsClient(engine, undefined as never)],
      ['an empty originator', () => new McsClient(engine, '')],
      ['an M2M-SE-ID that is no string', () => new McsClient(engine, 'CAE1', 5 as never)],
    ] as const) {
      expect(make, what).toThrow(InvalidInputError);
    }
  });

  it('a resource object\'s constructor refuses what is no McsClient or no address with an InvalidInputError, before any call', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4 });
    for (const [what, make] of [
      ['the engine in place of the client', () => new HashResource(c.engine as never, h.address)],
      ['no client', () => new RandResource(undefined as never, h.address)],
      ['an object of the client\'s shape', () => new SensitiveDataResource({ engine: c.engine, request: c.request.bind(c) } as never, h.address)],
      ['no address', () => new HashResource(c, undefined as never)],
      ['an empty address', () => new CipherResource(c, '')],
      ['the engine, for a SignatureResource', () => new SignatureResource(c.engine as never, h.address, 33)],
    ] as const) {
      expect(make, what).toThrow(InvalidInputError);
    }
    expect(await new HashResource(c, h.address).retrieve()).toMatchObject({ Halg: 4 });
  });

  it('signature of a hash algorithm is refused naming table 9.9-1, the signature algorithms', async () => {
    const c = await client();
    await expect(c.signature({ algorithm: 4 as never })).rejects.toThrow(/^algorithm must be a signature algorithm of table 9\.9-1 \(18, 25, 26, 27, 33, 34, 38, 49\), got 4$/);
  });

  it('signature() reads its options when called: an options object reused for the next call before the first resolved changes nothing of the first', async () => {
    const c = await client();
    const opts: { algorithm: 33 | 25; name: string } = { algorithm: 33, name: 'ecdsa' };
    const first = c.signature(opts);
    opts.algorithm = 25;
    opts.name = 'mac';
    const [ec, mac] = await Promise.all([first, c.signature(opts)]);
    expect([ec.algorithm, (await ec.retrieve()).Salg, (await ec.retrieve()).rn]).toEqual([33, 33, 'ecdsa']);
    expect((await ec.generateKey()).publicKey?.length).toBe(65);
    expect([mac.algorithm, (await mac.retrieve()).Salg]).toEqual([25, 25]);
  });

  it('signature prehashed: the message given is the digest, signed as such', async () => {
    const c = await client();
    const msg = utf8('prehashed message');
    const s = await c.signature({ algorithm: 33, prehashed: true });
    const pub = (await s.generateKey()).publicKey!;
    await s.update(hash('SHA-256', msg));
    const sig = await s.sign();
    expect(ecdsa('P-256').verify(sig, msg, pub)).toBe(true);
  });

  it('signature publicKey of P-384: a verify-only resource takes the whole 97-byte point', async () => {
    const c = await client();
    const p = ecdsa('P-384');
    const { secretKey, publicKey } = p.keygen();
    const msg = utf8('verify only');
    const sig = p.sign(msg, secretKey);
    const v = await c.signature({ algorithm: 34, publicKey });
    await v.update(msg);
    expect(await v.verify(sig)).toBe(true);
  });

  it('cipher({ aad }) alone creates the parameters; a nonce set later completes them', async () => {
    const c = await client();
    const aad = utf8('header'), data = utf8('payload of the cipher');
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 256, key: KEY, aad });
    await cph.setParameters({ nonce: NONCE });
    await cph.update(data);
    expect(hexOf(await cph.encrypt())).toBe(hexOf(gcm(KEY, NONCE, aad).encrypt(data)));
  });

  it('a byte option given as null is an InvalidInputError, not read as absent', async () => {
    const c = await client();
    const e = await c.cipher({ algorithm: 1001, maxByteSize: 64, key: null as never }).then(() => undefined, (x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidInputError);
    expect((e as Error).message).toMatch(/^key /);
  });
});

describe('McsClient: methods on resources', () => {
  it('request() without a root element answers the body of the response\'s one element, and {} for a DELETE, which answers none (coverage gap)', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4, name: 'h' });
    const read = await c.request(2, h.address);
    expect(read).toMatchObject({ ri: h.address.split('/').pop(), rn: 'h', Halg: 4 });
    expect(await c.request(4, h.address)).toEqual({});
  });

  it('request() and createUnder() with a long root element (\'senv:hash\', which the engine accepts) answer the body the response names by its short one', async () => {
    const c = await client();
    const seId = c.engine.seIds[0]!;
    const made = await c.request(1, seId, 'senv:hash', { rn: 'h', algorithm: 4 }, 20004);
    expect(made).toMatchObject({ rn: 'h', Halg: 4 });
    const address = `${seId}/${made.ri as string}`;
    expect(await c.request(2, address, 'senv:hash')).toMatchObject({ ri: made.ri, rn: 'h' });
    expect(await c.request(3, address, 'senv:hash', { message: utf8('abc') })).toMatchObject({ ri: made.ri });
    const child = await c.createUnder(`${seId}/me`, 20004, 'senv:hash', { rn: 'h2', algorithm: 4 });
    expect(child).toMatch(new RegExp(`^${seId}/Hsh[0-9a-z]+$`));
    expect(await c.request(2, child)).toMatchObject({ rn: 'h2' });
  });

  it('discard() on <hash> and <signature> drops the message held (msg: null), as on <cipher>', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4 });
    await h.update(utf8('dropped'));
    await h.discard();
    await h.update(utf8('abc'));
    expect(hexOf(await h.calculate())).toBe(hexOf(hash('SHA-256', utf8('abc'))));
    const mac = await c.signature({ algorithm: 25, key: KEY });
    await mac.update(utf8('dropped'));
    await mac.discard();
    expect((await mac.retrieve()).msg).toBeUndefined();
  });

  it('setParameters() the object knows made a child is one UPDATE; an UPDATE refused for its values is not tried again as a CREATE', async () => {
    const c = await client();
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY });
    await cph.setParameters({ nonce: NONCE });
    const ops: number[] = [];
    const send = c.engine.send.bind(c.engine);
    c.engine.send = (req, options) => (ops.push((req as { op: number }).op), send(req, options));
    await cph.setParameters({ nonce: NONCE.map((b) => b ^ 1) });
    await expect(cph.setParameters({ nonce: new Uint8Array(5) })).rejects.toMatchObject({ rsc: 4000, message: expect.stringContaining('nc (nonce) must be 12 bytes') });
    expect(ops).toEqual([3, 3]);
  });

  it('setParameters() of a new <cipher> whose parameters another made meanwhile: the CREATE finds them (4105), and what the UPDATE of them answers is the answer, a refusal of its values too (coverage gap)', async () => {
    const c = await client();
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY });
    const made = await c.engine.send({ op: 1, to: cph.address, fr: 'CAE1', rqi: 'other', ty: 20001, pc: { 'senv:algP': { rn: 'parameters', nc: NONCE } } });
    expect(made.rsc).toBe(2001);
    const ops: number[] = [];
    const send = c.engine.send.bind(c.engine);
    c.engine.send = (req, options) => (ops.push((req as { op: number }).op), send(req, options));
    await expect(cph.setParameters({ nonce: new Uint8Array(5) })).rejects.toMatchObject({ name: 'McsError', rsc: 4000, message: expect.stringContaining('nc (nonce) must be 12 bytes') });
    expect(ops).toEqual([1, 3]);
  });

  it('verify() is true only where the answer\'s vR is true: none, or one of another type, is no verification', async () => {
    const c = await client();
    const mac = await c.signature({ algorithm: 25, key: KEY });
    const msg = utf8('signed');
    await mac.update(msg);
    const tag = hmac('SHA-256', KEY, msg);
    const send = c.engine.send.bind(c.engine);
    for (const vR of [undefined, 'true', 1]) {
      c.engine.send = async (req, options) => {
        const r = await send(req, options);
        const body = r.pc?.['senv:Sgn'] as Record<string, unknown> | undefined;
        if (body && 'vR' in body) body.vR = vR;
        return r;
      };
      expect(await mac.verify(tag), String(vR)).toBe(false);
    }
    c.engine.send = send;
    expect(await mac.verify(tag)).toBe(true);
  });

  it('set() and updateRegistration() of anything but an object of attributes reject with InvalidInputError, nothing sent; request() sends null content as given (4000)', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4 });
    const before = await h.retrieve();
    const registered = await c.registration();
    await new Promise((r) => setTimeout(r, 5));
    for (const bad of [null, undefined, [], 'msg']) {
      await expect(h.set(bad as never), String(bad)).rejects.toThrow(InvalidInputError);
      await expect(c.updateRegistration(bad as never), String(bad)).rejects.toThrow(InvalidInputError);
    }
    expect((await h.retrieve()).lt).toBe(before.lt);
    expect((await c.registration()).lt).toBe(registered.lt);
    await expect(c.request(3, h.address, 'senv:Hsh', null as never)).rejects.toMatchObject({ rsc: 4000 });
  });

  it('memory(): available is what is left of the total once data is held', async () => {
    const c = await client();
    const before = await c.memory();
    await c.sensitiveData(new Uint8Array(1000));
    const after = await c.memory();
    expect(after.total).toBe(before.total);
    expect(after.available).toBeLessThanOrEqual(before.available - 1000);
  });

  it('a policy\'s update({ selfPrivileges }) replaces pvs only; update({ privileges }) pv only', async () => {
    const c = await client();
    const other = await new McsClient(c.engine, 'CAE2').register('them');
    const acp = await c.accessControlPolicy({
      privileges: [{ originators: ['CAE2'], operations: 2 }],
      selfPrivileges: [{ originators: ['CAE1'], operations: 63 }],
    });
    const shared = await c.hash({ algorithm: 4, policies: [acp.address] });
    await acp.update({ selfPrivileges: [{ originators: ['CAE1', 'CAE3'], operations: 63 }] });
    const after = await acp.retrieve();
    expect(after.pvs).toEqual({ acr: [{ acor: ['CAE1', 'CAE3'], acop: 63 }] });
    expect(after.pv).toEqual({ acr: [{ acor: ['CAE2'], acop: 2 }] });
    expect((await other.request(2, shared.address, 'senv:Hsh')).Halg).toBe(4);
    await acp.update({ privileges: [{ originators: ['CAE2'], operations: 16 }] });
    expect((await acp.retrieve()).pvs).toEqual({ acr: [{ acor: ['CAE1', 'CAE3'], acop: 63 }] });
  });

  it('a rule written with the primitive\'s names (acor, acop) is an InvalidInputError naming the client\'s, nothing sent', async () => {
    const c = await client();
    const sent = vi.spyOn(c.engine, 'send');
    const wire = [{ acor: ['CAE2'], acop: 2 }] as unknown as AccessRule[];
    await expect(c.accessControlPolicy({ privileges: wire, selfPrivileges: [{ originators: ['CAE1'], operations: 63 }] }))
      .rejects.toThrow(new InvalidInputError('privileges[0] has no originators: a rule is { originators, operations } (acor and acop are their names in the primitive)'));
    await expect(c.accessControlPolicy({ privileges: [{ originators: ['CAE2'] }] as unknown as AccessRule[], selfPrivileges: [{ originators: ['CAE1'], operations: 63 }] }))
      .rejects.toThrow(/^privileges\[0\] has no operations: /);
    expect(sent).not.toHaveBeenCalled();
  });
});

// Review findings of the thirtieth stop: calls of two requests by different
// clients on one resource, and what a clean-up that fails leaves behind.
describe('McsClient: one resource shared by two originators', () => {
  it('verify() and generate() of two clients on one resource do not interleave: each gets the verdict on its own Sgn, the length it asked for', async () => {
    const engine = await McsEngine.create();
    engines.push(engine);
    const owner = await new McsClient(engine, 'CAE1').register('r1');
    const other = await new McsClient(engine, 'CAE2').register('r2');
    const acp = await owner.accessControlPolicy({ privileges: [{ originators: ['CAE2'], operations: 2 | 4 }], selfPrivileges: [{ originators: ['CAE1'], operations: 63 }] });
    const key = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const sig = await owner.signature({ algorithm: 25, key, policies: [acp.address] });
    const msg = utf8('pay 10 EUR');
    await sig.update(msg);
    const good = hmac('SHA-256', key, msg), forged = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const theirs = new SignatureResource(other, sig.address, 25);
    for (const order of [0, 1]) {
      const calls = order ? [sig.verify(good), theirs.verify(forged)] : [theirs.verify(forged), sig.verify(good)];
      const verdicts = await Promise.all(calls);
      expect(verdicts, `order ${order}`).toEqual(order ? [true, false] : [false, true]);
    }
    const rand = await owner.rand({ rngType: 1, policies: [acp.address] });
    const lengths = await Promise.all([rand.generate(16), new RandResource(other, rand.address).generate(4096), rand.generate(1)]);
    expect(lengths.map((b) => b.length)).toEqual([16, 4096, 1]);
    // A call made while the second runs (the first settled) waits for it: the first's settling leaves the second's place in the queue.
    let third: Promise<boolean> | undefined;
    const send = engine.send.bind(engine);
    engine.send = (req, options) => {
      const { fr, op } = req as { fr: string; op: number };
      if (!third && fr === 'CAE2' && op === 3) third = sig.verify(good);
      return send(req, options);
    };
    const verdicts = await Promise.all([sig.verify(good), theirs.verify(forged)]);
    expect([...verdicts, await third]).toEqual([true, false, true]);
  });

  it('generate() of an originator granted RETRIEVE alone gets the length the <rand> holds; only another length is UPDATEd (4103 for it)', async () => {
    const engine = await McsEngine.create();
    engines.push(engine);
    const owner = await new McsClient(engine, 'CAE1').register('r1');
    const reader = await new McsClient(engine, 'CAE2').register('r2');
    const acp = await owner.accessControlPolicy({ privileges: [{ originators: ['CAE2'], operations: 2 }], selfPrivileges: [{ originators: ['CAE1'], operations: 63 }] });
    const rand = await owner.rand({ rngType: 1, policies: [acp.address] });
    await expect(rand.generate()).rejects.toMatchObject({ rsc: 4005 });
    // No Dsz yet, and the reader may not UPDATE one: the UPDATE's 4103 says so, not the 4005 of another try.
    await expect(new RandResource(reader, rand.address).generate(16)).rejects.toMatchObject({ rsc: 4103 });
    expect((await rand.generate(16)).length).toBe(16);
    const ops: unknown[] = [];
    const send = engine.send.bind(engine);
    engine.send = (req, options) => (ops.push((req as { op: number }).op), send(req, options));
    const theirs = new RandResource(reader, rand.address);
    const got = [await theirs.generate(16), await theirs.generate(), await rand.generate(16)];
    expect(got.map((b) => b.length)).toEqual([16, 16, 16]);
    expect(new Set(got.map(hexOf)).size).toBe(3);
    // The same length is no UPDATE: three RETRIEVEs of generateRand.
    expect(ops).toEqual([2, 2, 2]);
    await expect(theirs.generate(8)).rejects.toMatchObject({ rsc: 4103 });
    // Changed by another object since this one generated: the result's length tells, and Dsz is written again.
    await new RandResource(owner, rand.address).generate(32);
    expect((await rand.generate(16)).length).toBe(16);
    await expect(rand.generate(-1)).rejects.toThrow(InvalidInputError);
    // The reader saw 16; the owner moved Dsz to 32 and back to 8: a reader asking for 8 is not allowed the UPDATE its
    // stale hint calls for, and gets the 8 the resource holds.
    await new RandResource(owner, rand.address).generate(32);
    await new RandResource(owner, rand.address).generate(8);
    expect((await theirs.generate(8)).length).toBe(8);
  });

  it('a requestExpiration as large as a safe integer is sent on every call, never refused as one the caller did not give', async () => {
    const engine = await McsEngine.create();
    engines.push(engine);
    const client = new McsClient(engine, 'CAE1', undefined, { requestExpiration: Number.MAX_SAFE_INTEGER });
    await client.register('r1');
    for (let i = 0; i < 40; i++) expect((await client.registration()).rn, `call ${i}`).toBe('r1');
  });

  it('setParameters() on the object cipher() returned updates a `parameters` child another client made since, and creates it again once deleted', async () => {
    const engine = await McsEngine.create();
    engines.push(engine);
    const owner = await new McsClient(engine, 'CAE1').register('r1');
    const other = await new McsClient(engine, 'CAE2').register('r2');
    const acp = await owner.accessControlPolicy({ privileges: [{ originators: ['CAE2'], operations: 1 | 2 | 4 }], selfPrivileges: [{ originators: ['CAE1'], operations: 63 }] });
    const data = utf8('payload');
    const nonceOf = (n: number) => new Uint8Array(12).fill(n);
    const encrypted = async (c: CipherResource, n: number) => {
      await c.update(data);
      expect(hexOf(await c.encrypt()), `nonce ${n}`).toBe(hexOf(gcm(KEY, nonceOf(n)).encrypt(data)));
    };
    // Another client creates the child first: the factory's object, which made none, tries the CREATE (4105) and then updates it.
    const shared = await owner.cipher({ algorithm: 1001, maxByteSize: 1024, key: KEY, policies: [acp.address] });
    await new CipherResource(other, shared.address).setParameters({ nonce: nonceOf(1) });
    await shared.setParameters({ nonce: nonceOf(2) });
    await encrypted(shared, 2);
    // The child the factory's object made is deleted (to drop aD): its UPDATE answers 4004, and the child is created again, without aD.
    const own = await owner.cipher({ algorithm: 1001, maxByteSize: 1024, key: KEY, nonce: nonceOf(0), aad: utf8('header') });
    await owner.request(4, `${own.address}/parameters`);
    await own.setParameters({ nonce: nonceOf(3) });
    expect(await owner.request(2, `${own.address}/parameters`, 'senv:algP')).not.toHaveProperty('aD');
    await encrypted(own, 3);
    // Under another name, the CREATE's 4105 and the UPDATE's 4004 say so.
    const named = await owner.cipher({ algorithm: 1001, maxByteSize: 1024, key: KEY });
    await owner.createUnder(named.address, 20001, 'senv:algP', { rn: 'mine', nc: nonceOf(4) });
    await expect(named.setParameters({ nonce: nonceOf(5) })).rejects.toMatchObject({ rsc: 4105, message: expect.stringMatching(/created under another name than 'parameters'/) });
  });

  it('cipher() whose parameters fail and whose clean-up DELETE fails too says so and names the <cipher> left', async () => {
    const engine = await McsEngine.create();
    const me = await new McsClient(engine, 'CAE1').register('r1');
    const made = me.cipher({ algorithm: 1001, maxByteSize: 1024, key: KEY, nonce: NONCE });
    void engine.close();
    await expect(made).rejects.toThrow(/engine closed; and the <cipher> \S+ could not be deleted \(engine closed\)/);
  });
});

describe('McsClient: requestExpiration bounds a call behind an SE that stopped answering', () => {
  /** A software SE whose RNG stops answering while `stuck`, until released. */
  class Stuck extends SoftwareBackend {
    stuck = false;
    calls = 0;
    #release: (() => void)[] = [];
    override async random(type: 1 | 2, length: number): Promise<Uint8Array> {
      this.calls++;
      if (this.stuck) await new Promise<void>((r) => this.#release.push(r));
      return super.random(type, length);
    }
    release(): void {
      this.stuck = false;
      for (const r of this.#release.splice(0)) r();
    }
  }
  const sleep = (ms: number) => new Promise<string>((r) => setTimeout(r, ms, 'still pending'));
  const outcome = (p: Promise<unknown>) => Promise.race([p.then(() => 'answered', (e: unknown) => e), sleep(600)]);

  it('the constructor\'s for every call, a factory\'s or request()\'s for that call: 4008 (McsError) where they would wait for ever, and a call that expired while queued never runs', async () => {
    const b = new Stuck();
    const engine = await McsEngine.create({ backends: [b] });
    engines.push(engine);
    const me = await new McsClient(engine, 'CAE1', undefined, { requestExpiration: 150 }).register('me');
    const patient = new McsClient(engine, 'CAE1');
    let sent = 0;
    const send = engine.send.bind(engine);
    engine.send = (req, options) => (sent++, send(req, options));
    const r = await me.rand({ rngType: 1 });
    await r.generate(16);
    b.stuck = true;
    const hung = r.generate(16);
    try {
      await new Promise((res) => setTimeout(res, 20));
      // Behind the hung request on the SE: the engine answers 4008, by its 150 ms expiration: before a
      // 600 ms timer set ahead of the calls fires. Timers fire in the order of their deadlines however
      // late a loaded machine runs them, where a wall-clock bound would count the machine's stalls.
      let late = false;
      const lateTimer = setTimeout(() => void (late = true), 600);
      const [memory, registration, retrieved] = await Promise.all([outcome(me.memory()), outcome(me.registration()), outcome(r.retrieve())]);
      clearTimeout(lateTimer);
      for (const e of [memory, registration, retrieved]) expect(e).toMatchObject({ name: 'McsError', rsc: 4008 });
      expect(late, 'answered after a 600 ms timer').toBe(false);
      // A call's own option, on a client of none.
      expect(await outcome(patient.hash({ algorithm: 4, requestExpiration: 50 }))).toMatchObject({ rsc: 4008 });
      expect(await outcome(patient.request(2, me.seId, 'senv:Senv', undefined, undefined, { requestExpiration: 0 }))).toMatchObject({ rsc: 4008 });
      expect(await outcome(patient.registration())).toBe('still pending');
      // Queued behind the hung call on the same <rand>: never sent, and it does not run once the SE answers again.
      expect(await outcome(r.generate(16))).toMatchObject({ name: 'McsError', rsc: 4008 });
    } finally {
      b.release();
    }
    const calls = b.calls, sentBefore = sent;
    expect((await hung).length).toBe(16);
    expect((await r.generate(16)).length).toBe(16);
    expect(b.calls).toBe(calls + 1);
    // Not even sent for the engine to refuse as expired: the one request is the last generate()'s.
    expect(sent - sentBefore).toBe(1);
    expect(me.requestExpiration).toBe(150);
  });

  it('a call of two requests whose wall clock steps a day forward between them: its requestExpiration counts time that passed, and the second request is served', async () => {
    const engine = await McsEngine.create();
    engines.push(engine);
    const me = await new McsClient(engine, 'CAE1', undefined, { requestExpiration: 60_000 }).register('me');
    const sig = await me.signature({ algorithm: 25, key: KEY });
    await sig.update(utf8('m'));
    const mac = await sig.sign();
    const sent: unknown[] = [];
    const send = engine.send.bind(engine);
    const realNow = Date.now;
    engine.send = (req, options) => {
      sent.push((req as { rqet?: unknown }).rqet);
      // After verify()'s first request (UPDATE Sgn), NTP steps the wall clock a day forward.
      if (sent.length === 1) vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 86_400_000);
      return send(req, options);
    };
    try {
      expect(await sig.verify(mac)).toBe(true);
    } finally {
      vi.restoreAllMocks();
    }
    expect(sent).toHaveLength(2);
    expect(sent[1], 'what is left of the minute, not 0').toBeGreaterThan(50_000);
  });

  it('an rqet further off than a timer holds (2^31 - 1 ms) is no deadline that passed: queued behind a hung call, the request waits for it and is served (coverage gap)', async () => {
    const b = new Stuck();
    const engine = await McsEngine.create({ backends: [b] });
    engines.push(engine);
    const me = await new McsClient(engine, 'CAE1').register('me');
    const r = await me.rand({ rngType: 1 });
    b.stuck = true;
    const hung = r.generate(16);
    try {
      await new Promise((res) => setTimeout(res, 20));
      // A timestamp centuries off, and a duration in ms past the longest timer (which would fire at once).
      const queued = ['29991231T000000', 2 ** 31 + 1000].map((rqet) => engine.send({ op: 2, to: me.seId, fr: 'CAE1', rqi: `far ${rqet}`, rqet }));
      expect(await Promise.race([Promise.all(queued).then((x) => x.map((q) => q.rsc)), sleep(100)])).toBe('still pending');
      b.release();
      expect((await hung).length).toBe(16);
      expect((await Promise.all(queued)).map((q) => q.rsc)).toEqual([2000, 2000]);
    } finally {
      b.release();
    }
  });

  it('a requestExpiration that is no whole number of milliseconds is an InvalidInputError', async () => {
    const c = await client();
    for (const bad of [-1, 1.5, '100', null, Number.NaN]) {
      expect(() => new McsClient(c.engine, 'CAE1', undefined, { requestExpiration: bad as never }), String(bad)).toThrow(InvalidInputError);
      await expect(c.hash({ algorithm: 4, requestExpiration: bad as never }), String(bad)).rejects.toThrow(InvalidInputError);
      await expect(c.request(2, c.seId, 'senv:Senv', undefined, undefined, { requestExpiration: bad as never }), String(bad)).rejects.toThrow(InvalidInputError);
    }
    expect(() => new McsClient(c.engine, 'CAE1', undefined, 5 as never)).toThrow(InvalidInputError);
  });
});

describe('McsEngine: caller code run inside send()', () => {
  it('a request whose getter closes the engine is refused (5000), not served on the closed SE\'s zeroized data', async () => {
    const engine = await McsEngine.create();
    const se = engine.seIds[0]!;
    await engine.send({ op: 1, to: se, fr: 'A', rqi: '1', ty: 20011, pc: { 'senv:Senv': { rn: 'reg', sID: se, seL: 1 } } });
    await engine.send({ op: 1, to: se, fr: 'A', rqi: '2', ty: 20009, pc: { 'senv:Sdo': { rn: 'secret', msg: 'c2VjcmV0IGRhdGE=' } } });
    const r = await engine.send({ op: 2, to: `${se}/reg/secret`, fr: 'A', get rqi() { void engine.close(); return '3'; } });
    expect([r.rsc, r.pc]).toEqual([5000, { 'm2m:dbg': 'engine closed' }]);
  });

  it('so is one whose content getter closes the engine while the SE serves it: nothing of it is applied, whether it waited for its turn, for an expiration or not at all', async () => {
    for (const path of ['idle', 'behind another request', 'an expiration due'] as const) {
      const dir = mkdtempSync(join(tmpdir(), 'senv-close-getter-'));
      try {
        let now = Date.UTC(2026, 10, 22, 12);
        const options = { dataDir: dir, masterKey: new Uint8Array(32).fill(4), clock: () => now };
        const engine = await McsEngine.create(options);
        const se = engine.seIds[0]!;
        await engine.send({ op: 1, to: se, fr: 'A', rqi: '1', ty: 20011, pc: { 'senv:Senv': { rn: 'reg', sID: se, seL: 1 } } });
        await engine.send({ op: 1, to: se, fr: 'A', rqi: '2', ty: 20004, pc: { 'senv:Hsh': { rn: 'h', Halg: 4 } } });
        await engine.send({ op: 1, to: se, fr: 'A', rqi: '2', ty: 20004, pc: { 'senv:Hsh': { rn: 'due', Halg: 4, et: '20261122T120100' } } });
        if (path === 'an expiration due') now += 120_000;
        const ahead = path === 'behind another request' ? engine.send({ op: 2, to: `${se}/reg/h`, fr: 'A', rqi: 'x' }) : undefined;
        let closing: Promise<void> | undefined;
        const body = { get msg() { closing ??= engine.close(); return 'AAEC'; } };
        const r = await engine.send({ op: 3, to: `${se}/reg/h`, fr: 'A', rqi: '3', pc: { 'senv:Hsh': body } });
        await ahead;
        await closing;
        expect([r.rsc, r.pc], path).toEqual([5000, { 'm2m:dbg': 'engine closed' }]);
        const again = await McsEngine.create(options);
        const h = await again.send({ op: 2, to: `${se}/reg/h`, fr: 'A', rqi: '4' });
        expect([h.rsc, (h.pc!['senv:Hsh'] as { cbs?: number }).cbs ?? 0], `${path}: nothing of it applied`).toEqual([2000, 0]);
        await again.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('with rcn 0 the representation the response leaves out is zeroized: an exported key\'s copy is not left behind', async () => {
    const engine = await McsEngine.create();
    const se = engine.seIds[0]!;
    await engine.send({ op: 1, to: se, fr: 'A', rqi: '1', ty: 20011, pc: { 'senv:Senv': { rn: 'reg', sID: se, seL: 1 } } });
    const key = new Uint8Array(32).fill(0x5c);
    const { made, result } = await arraysMadeBy(() => engine.send({ op: 1, to: se, fr: 'A', rqi: '2', ty: 20012, rcn: 0, pc: { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: key, kExp: true } } }, { binary: true }));
    expect(result.rsc).toBe(2001);
    expect(result.pc).toBeUndefined();
    // Once the resource is gone (its key zeroized), no array the CREATE made holds the key.
    expect((await engine.send({ op: 4, to: `${se}/reg/m`, fr: 'A', rqi: '3' })).rsc).toBe(2002);
    await engine.close();
    // (Views of the caller's own key, made to read it, do not count.)
    const copies = made.filter((a) => a.buffer !== key.buffer && a.length === 32 && a.every((b) => b === 0x5c));
    expect(copies, 'no copy of the key is left in an array the engine made').toEqual([]);
  });

  it('thousands of requests queued on one SE are served in the order sent', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4 });
    const chunks = Array.from({ length: 5000 }, (_, i) => utf8(`${i},`));
    const sent = chunks.map((chunk) => h.update(chunk));
    const digest = h.calculate();
    await Promise.all(sent);
    const all = new Uint8Array(chunks.reduce((n, b) => n + b.length, 0));
    chunks.reduce((at, b) => (all.set(b, at), at + b.length), 0);
    expect(hexOf(await digest)).toBe(hexOf(hash('SHA-256', all)));
  });
});

// From a clause-by-clause review of TS-0016 clause 7 against the engine (thirtieth stop).
describe('attribute rules a spec review found off', () => {
  it('[SEReboot] mgd is WO with its fixed value: a CREATE may give "seReboot", nothing else; srt lists each type once; esi is an object', async () => {
    const engine = await McsEngine.create();
    engines.push(engine);
    const se = engine.seIds[0]!;
    const send = (op: number, to: string, pc: Record<string, unknown>, ty?: number) => engine.send({ op, to, fr: 'CAE1', rqi: 'x', ...(ty ? { ty } : {}), pc });
    expect((await send(1, se, { 'senv:Senv': { rn: 'reg', sID: se, seL: 1, srt: [20002, 20002] } }, 20011)).rsc).toBe(4000);
    expect((await send(1, se, { 'senv:Senv': { rn: 'reg', sID: se, seL: 1, srt: [20002, 20010] } }, 20011)).rsc).toBe(2001);
    const made = await send(1, `${se}/reg`, { 'senv:Srbt': { rn: 'mine', rbT: 1, mgd: 'seReboot' } }, 20010);
    expect([made.rsc, (made.pc?.['senv:Srbt'] as { mgd?: string })?.mgd]).toEqual([2001, 'seReboot']);
    const other = await send(1, `${se}/reg`, { 'senv:Srbt': { rn: 'other', rbT: 1, mgd: 'reboot' } }, 20010);
    expect([other.rsc, other.pc?.['m2m:dbg']]).toEqual([4000, "mgd (mgmtDefinition) must be one of 'seReboot'"]);
    expect((await send(3, `${se}/reg/mine`, { 'senv:Srbt': { mgd: 'seReboot' } })).rsc).toBe(4000);
    for (const esi of [5, 'x', [], null]) {
      const r = await send(3, `${se}/reg`, { 'senv:Senv': { esi } });
      if (esi === null) expect(r.rsc, 'null removes it').toBe(2004);
      else expect([r.rsc, r.pc?.['m2m:dbg']], JSON.stringify(esi)).toEqual([4000, 'esi (e2eSecInfo) must be an object (m2m:e2eSecInfo)']);
    }
    expect((await send(3, `${se}/reg`, { 'senv:Senv': { esi: { sud: [1] } } })).rsc).toBe(2004);
  });
});

describe('representations (repr.ts) as McsClient receives them', () => {
  it('an object attribute in a response is the caller\'s own: editing a policy\'s pv grants nothing', async () => {
    const c = await client();
    const other = await new McsClient(c.engine, 'CAE2').register('them');
    const acp = await c.accessControlPolicy({
      privileges: [{ originators: ['CAE3'], operations: 2 }],
      selfPrivileges: [{ originators: ['CAE1'], operations: 63 }],
    });
    const shared = await c.hash({ algorithm: 4, policies: [acp.address] });
    const seen = await acp.retrieve();
    (seen.pv as { acr: { acor: string[] }[] }).acr[0]!.acor.push('CAE2');
    (seen.pvs as { acr: { acor: string[] }[] }).acr[0]!.acor.push('CAE2');
    expect((await acp.retrieve()).pv).toEqual({ acr: [{ acor: ['CAE3'], acop: 2 }] });
    const refused = await other.request(2, shared.address, 'senv:Hsh').then(() => undefined, (e: unknown) => e);
    expect(refused).toMatchObject({ rsc: 4103 });
  });

  it('a result over 64 bytes (handed to the response, copied into the resource) of another length than the one held: the resource holds exactly it', async () => {
    const c = await client();
    const rand = await c.rand({ rngType: 1 });
    for (const n of [100, 200, 100]) {
      const got = await rand.generate(n);
      expect(got.length, `generate(${n})`).toBe(n);
      expect(hexOf((await rand.retrieve()).rndD as Uint8Array), `rndD after generate(${n})`).toBe(hexOf(got));
    }
  });

  it('lastModifiedTime moves with an UPDATE, creationTime stays', async () => {
    let now = Date.UTC(2026, 10, 22, 12, 0, 0);
    const engine = await McsEngine.create({ clock: () => now });
    engines.push(engine);
    const c = await new McsClient(engine, 'CAE1').register('me');
    const h = await c.hash({ algorithm: 4 });
    now += 1500;
    const updated = await h.set({ msg: utf8('x') });
    expect(updated.lt).toBe('20261122T120001,500000');
    const r = await h.retrieve();
    expect({ ct: r.ct, lt: r.lt }).toEqual({ ct: '20261122T120000,000000', lt: '20261122T120001,500000' });
  });

  it('an UPDATE answers ri, lt and what it wrote (a chunk as cbs, never the message); an operation its results', async () => {
    const c = await client();
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 256, key: KEY, nonce: NONCE });
    const first = await cph.set({ msg: utf8('first chunk') });
    expect(Object.keys(first).sort()).toEqual(['cbs', 'lt', 'ri']);
    expect(first.cbs).toBe(11);
    const h = await c.hash({ algorithm: 4 });
    expect(Object.keys(await h.set({ et: '20991231T000000' })).sort()).toEqual(['et', 'lt', 'ri']);
    await h.update(utf8('abc'));
    const calc = await c.request(2, `${h.address}/calculateHash`, 'senv:Hsh');
    expect(Object.keys(calc).sort()).toEqual(['Hv', 'ri']);
  });

  it('an attribute without a value to show (a key that may not be exported, no et, no data) is absent, not present as undefined', async () => {
    const c = await client();
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY });
    const r = await cph.retrieve();
    expect('kDt' in r).toBe(false);
    expect('et' in r).toBe(false);
    expect(Object.entries(r).filter(([, v]) => v === undefined).map(([k]) => k)).toEqual([]);
  });

  it('data kept on the device (objectStore) is no attribute of a CREATE or UPDATE response, only its size', async () => {
    const objects = new Map<string, Uint8Array>();
    const device: ObjectStore = {
      write: async (id, d) => void objects.set(id, d.slice()),
      read: async (id) => objects.get(id)!.slice(),
      remove: async (id) => void objects.delete(id),
    };
    const engine = await McsEngine.create({ backends: [Object.assign(new SoftwareBackend(), { objectStore: device })] });
    engines.push(engine);
    const c = await new McsClient(engine, 'CAE1').register('me');
    const made = await c.request(1, c.seId, 'senv:Sdo', { rn: 'd', msg: utf8('on the device') }, 20009);
    expect(made.cbs).toBe(13);
    expect('msg' in made).toBe(false);
    const d = `${c.seId}/${made.ri as string}`;
    expect('msg' in (await c.request(3, d, 'senv:Sdo', { acpi: [] }))).toBe(false);
    expect(new TextDecoder().decode((await c.request(2, d, 'senv:Sdo')).msg as Uint8Array)).toBe('on the device');
  });
});

describe('no copy of a secret stays behind (McsClient\'s argument copies, an exported key, a base64 encoding)', () => {
  it('the key the backend exports for a RETRIEVE of an exportable <cipher> is zeroized, in binary and base64 mode', async () => {
    const exported: Uint8Array[] = [];
    class Watched extends SoftwareBackend {
      override async exportKey(...args: Parameters<SoftwareBackend['exportKey']>): Promise<Uint8Array> {
        const k = await super.exportKey(...args);
        exported.push(k);
        return k;
      }
    }
    const engine = await McsEngine.create({ backends: [new Watched()] });
    engines.push(engine);
    const c = await new McsClient(engine, 'CAE1').register('me');
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY, exportable: true, name: 'x' });
    expect(hexOf((await cph.retrieve()).kDt as Uint8Array)).toBe(hexOf(KEY));
    const text = await engine.send({ op: 2, to: `${c.seId}/me/x`, fr: 'CAE1', rqi: 'b64' });
    expect((text.pc!['senv:Cph'] as Record<string, unknown>).kDt).toBe(Buffer.from(KEY).toString('base64'));
    expect(exported.length).toBeGreaterThanOrEqual(2);
    for (const k of exported) expect(k.every((b) => b === 0), 'the exported copy is zeroized').toBe(true);
  });

  it('generate() zeroizes a result of another length than asked (Dsz moved by another object) before it UPDATEs Dsz', async () => {
    const c = await client();
    const rand = await c.rand({ rngType: 1 });
    await rand.generate(16);
    await new RandResource(c, rand.address).generate(32);
    const drawn: Uint8Array[] = [];
    const send = c.engine.send.bind(c.engine);
    c.engine.send = async (req, options) => {
      const r = await send(req, options);
      const d = (r.pc?.['senv:Rnd'] as Record<string, unknown> | undefined)?.rndD;
      if (d instanceof Uint8Array) drawn.push(d);
      return r;
    };
    const got = await rand.generate(16);
    expect(drawn.map((d) => d.length)).toEqual([32, 16]);
    expect(drawn[0]!.every((b) => b === 0)).toBe(true);
    expect(drawn[1]).toBe(got);
    expect(got.some((b) => b !== 0)).toBe(true);
  });

  it('the chunk, signature and data copies sent are zeroized once answered; the caller\'s arrays are left alone', async () => {
    const c = await client();
    const sent: { req: Record<string, unknown>; res: Promise<McsResponse> }[] = [];
    const send = c.engine.send.bind(c.engine);
    c.engine.send = (req, opts) => {
      const res = send(req, opts);
      sent.push({ req: req as Record<string, unknown>, res });
      return res;
    };
    const bytesSent = () => sent.flatMap(({ req }) => Object.values((req.pc ?? {}) as Record<string, Record<string, unknown>>))
      .flatMap((b) => Object.values(b)).filter((v): v is Uint8Array => v instanceof Uint8Array);
    const chunk = utf8('a chunk of secret data'), data = utf8('secret data object');
    const h = await c.hash({ algorithm: 4 });
    await h.update(chunk);
    const d = await c.sensitiveData(utf8('x'));
    await d.write(data);
    const mac = await c.signature({ algorithm: 25, key: KEY });
    const tag = new Uint8Array(32).fill(7);
    await mac.verify(tag);
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY, nonce: NONCE });
    await cph.setParameters({ aad: utf8('aad') });
    await Promise.all(sent.map((s) => s.res));
    // A CREATE is sent at once, with views of the caller's key and data: only the copies are looked at.
    const copies = bytesSent().filter((v) => v.buffer !== KEY.buffer && v.length !== 1);
    expect(copies.map((v) => v.length).sort((a, b) => a - b)).toEqual([3, 12, 18, 22, 32]);
    for (const v of copies) expect(v.every((b) => b === 0), `a copy of ${v.length} bytes is zeroized`).toBe(true);
    expect(new TextDecoder().decode(chunk)).toBe('a chunk of secret data');
    expect(new TextDecoder().decode(data)).toBe('secret data object');
    expect(tag.every((b) => b === 7)).toBe(true);
    expect(hexOf(NONCE)).toBe('a0a1a2a3a4a5a6a7a8a9aaab');
  });

  it('content that cannot be copied (a detached view after the chunk) rejects, never throws from the call, and the chunk\'s copy made so far is zeroized', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4 });
    const secret = utf8('a secret chunk copied first');
    const detached = Uint8Array.from(secret);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    // A promise comes back whatever the content: `set(x).catch(handler)` sees the failure.
    const { made, result: err } = await arraysMadeBy(() => h.set({ msg: secret, lbl: detached }).then(() => undefined, (e: unknown) => e));
    expect(err).toBeInstanceOf(InvalidInputError);
    // (A view of the caller's own array, through which it is read, is no copy.)
    const copies = made.filter((a) => a.length === secret.length && a.buffer !== secret.buffer);
    expect(copies.length, 'the chunk was copied before the detached view was met').toBeGreaterThan(0);
    for (const a of copies) expect(a.every((b) => b === 0), 'zeroized').toBe(true);
    await h.update(utf8('abc'));
    expect(hexOf(await h.calculate())).toBe(hexOf(hash('SHA-256', utf8('abc'))));
  });
});

describe('request primitives (primitive.ts) the client\'s engine reads', () => {
  it('an empty rqi and an array with a request\'s members are refused (4000); rvi 2a is a supported release, echoed', async () => {
    const c = await client();
    const array = await c.engine.send(Object.assign([], { op: 2, to: c.seId, fr: 'CAE1', rqi: 'arr' }));
    expect(array.rsc).toBe(4000);
    expect(String(array.pc?.['m2m:dbg'])).toMatch(/JSON object/);
    const empty = await c.engine.send({ op: 2, to: c.seId, fr: 'CAE1', rqi: '' });
    expect(empty.rsc).toBe(4000);
    expect(String(empty.pc?.['m2m:dbg'])).toMatch(/rqi/);
    const r = await c.engine.send({ op: 2, to: c.seId, fr: 'CAE1', rqi: 'r2a', rvi: '2a' });
    expect({ rsc: r.rsc, rvi: r.rvi }).toEqual({ rsc: 2000, rvi: '2a' });
  });

  it('rcn 0 is accepted on DELETE (its default); rqet in milliseconds is a whole number', async () => {
    const c = await client();
    const h = await c.hash({ algorithm: 4, name: 'h' });
    const del = await c.engine.send({ op: 4, to: h.address, fr: 'CAE1', rqi: 'd', rcn: 0 });
    expect({ rsc: del.rsc, pc: del.pc }).toEqual({ rsc: 2002, pc: undefined });
    for (const rqet of [1.5, Infinity, 2 ** 53]) {
      const r = await c.engine.send({ op: 2, to: c.seId, fr: 'CAE1', rqi: 'q', rqet });
      expect(r.rsc, String(rqet)).toBe(4000);
      expect(String(r.pc?.['m2m:dbg'])).toMatch(/rqet/);
    }
  });
});

describe('an option name nothing knows is refused before anything is sent or made', () => {
  const unknown = (name: string, where: string) => new RegExp(`^unknown option '${name}' in ${where.replace(/[()]/g, '\\$&')} \\(known: `);

  it('McsEngine.create, rotateMasterKey, send() and SoftwareBackend: a misspelt dataDir would have left the state in memory', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'senv-opt-')), 'data');
    try {
      await expect(McsEngine.create({ datadir: dir } as never)).rejects.toThrow(unknown('datadir', 'McsEngine options'));
      await expect(McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(7), memoryquota: 1 } as never)).rejects.toThrow(unknown('memoryquota', 'McsEngine options'));
      expect(() => new SoftwareBackend({ uniqueID: 'x' } as never)).toThrow(unknown('uniqueID', 'SoftwareBackend options'));
      // Nothing was opened for the refused engines: the directory is made by the first that comes up.
      expect(existsSync(dir)).toBe(false);
      const engine = await McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(7) });
      engines.push(engine);
      await expect(engine.rotateMasterKey({ masterkey: new Uint8Array(32).fill(8) } as never)).rejects.toThrow(unknown('masterkey', 'rotateMasterKey options'));
      const r = await engine.send({ op: 2, to: engine.seIds[0]!, fr: 'C1', rqi: 'b' }, { bianry: true } as never);
      expect(r.rsc).toBe(4000);
      expect(String(r.pc?.['m2m:dbg'])).toMatch(/unknown option 'bianry' in send\(\) options/);
      // The key was not rotated: the directory opens under the old one.
      await engine.close();
      engines.pop();
      engines.push(await McsEngine.create({ dataDir: dir, masterKey: new Uint8Array(32).fill(7) }));
    } finally {
      rmSync(dirname(dir), { recursive: true, force: true });
    }
  });

  it('McsClient: its own options, each factory\'s, each call\'s; the resource stays as it was', async () => {
    const c = await client();
    expect(() => new McsClient(c.engine, 'C2', undefined, { requestExpiry: 5 } as never)).toThrow(unknown('requestExpiry', 'McsClient options'));
    await expect(c.hash({ algorithm: 4, name: 'h1', nmae: 'h' } as never)).rejects.toThrow(unknown('nmae', 'hash options'));
    await expect(c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY, name: 'c1', nonse: NONCE } as never)).rejects.toThrow(unknown('nonse', 'cipher options'));
    await expect(c.signature({ algorithm: 25, name: 's1', prehash: true } as never)).rejects.toThrow(unknown('prehash', 'signature options'));
    await expect(c.rand({ rngType: 1, name: 'r1', expirationtime: '20991231T000000' } as never)).rejects.toThrow(unknown('expirationtime', 'rand options'));
    await expect(c.accessControlPolicy({ privileges: [], selfPrivileges: [], name: 'p1', policies: [] } as never)).rejects.toThrow(unknown('policies', 'accessControlPolicy options'));
    await expect(c.sensitiveData(utf8('s'), { name: 'd1', expirationTime: '20991231T000000' } as never)).rejects.toThrow(unknown('expirationTime', 'sensitiveData options'));
    // None of them was created: each name is free.
    await c.hash({ algorithm: 4, name: 'h1' });
    await c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY, name: 'c1' });
    await c.signature({ algorithm: 25, name: 's1' });
    await c.rand({ rngType: 1, name: 'r1' });
    await c.accessControlPolicy({ privileges: [], selfPrivileges: [{ originators: ['CAE1'], operations: 63 }], name: 'p1' });
    await c.sensitiveData(utf8('s'), 'd1');
    const h = await c.hash({ algorithm: 4 });
    await h.update(utf8('abc'));
    await expect(h.update(utf8('def'), { requestExpiraton: 100 } as never)).rejects.toThrow(unknown('requestExpiraton', 'request options'));
    expect(hexOf(await h.calculate())).toBe(hexOf(hash('SHA-256', utf8('abc'))));
    const cph = await c.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY });
    await expect(cph.setParameters({ nounce: NONCE } as never)).rejects.toThrow(unknown('nounce', 'setParameters options'));
    const acp = await c.accessControlPolicy({ privileges: [], selfPrivileges: [{ originators: ['CAE1'], operations: 63 }] });
    await expect(acp.update({ privilege: [] } as never)).rejects.toThrow(unknown('privilege', 'policy update options'));
  });
});

describe('codec: strict base64 and oneM2M timestamps', () => {
  it('base64 with unused bits set in its last group is refused, whichever bit (RFC 4648 section 3.5)', () => {
    // 'Zg==' is 'f': the second character's low 4 bits are unused; each one set is non-canonical.
    for (const c of ['h', 'i', 'k', 'o']) expect(fromBase64(`Z${c}==`), `Z${c}==`).toBeUndefined();
    // 'Zm8=' is 'fo': the third character's low 2 bits are unused.
    for (const c of ['9', '+', '/']) expect(fromBase64(`Zm${c}=`), `Zm${c}=`).toBeUndefined();
    // Any other value of those characters is canonical only with the unused bits zero.
    expect(fromBase64('ZmC=')).toBeUndefined();
    expect(hexOf(fromBase64('Zm8=')!)).toBe('666f');
  });

  it('base64 with a character outside the alphabet is refused, also just above ASCII', () => {
    for (const bad of ['\u0080AAA', 'AA\u0080A', 'AAAA\u00ff===', 'AAA\u0100']) expect(fromBase64(bad), JSON.stringify(bad)).toBeUndefined();
  });

  it('a secret\'s base64 encoding leaves no byte array holding it', async () => {
    const { made, result } = await arraysMadeBy(() => toBase64(KEY));
    expect(result).toBe(Buffer.from(KEY).toString('base64'));
    expect(made.length, 'the encoding is built in a byte array').toBeGreaterThan(0);
    for (const a of made) expect(a.every((b) => b === 0), 'zeroized').toBe(true);
  });

  it('parseTimestamp refuses fields out of range instead of rolling them over, and anything around the timestamp but a trailing Z', () => {
    for (const bad of ['20261322T120000', '20260230T120000', '20261131T000000', '20261122T240000', '20261122T126000', '20261122T120060', '20261122T235960', '20261122T120000.500000', 'x20261122T120000', '120261122T120000', '20261122T120000,', '20261122T120000ZZ', '20261122T120000+0100', '20261122T120000,1234567', 'z20261122T120000Z'])
      expect(parseTimestamp(bad), bad).toBeUndefined();
    expect(parseTimestamp('20240229T235959')).toBe(Date.UTC(2024, 1, 29, 23, 59, 59));
    expect(parseTimestamp('20261122T120000,5')).toBe(Date.UTC(2026, 10, 22, 12, 0, 0, 500));
    expect(parseTimestamp('20261122T120000,000999')).toBe(Date.UTC(2026, 10, 22, 12, 0, 0));
    // ISO 8601's UTC designator, as docs/mcs.md says.
    expect(parseTimestamp('20261122T120000Z')).toBe(Date.UTC(2026, 10, 22, 12));
    expect(parseTimestamp('20261122T120000,25Z')).toBe(Date.UTC(2026, 10, 22, 12, 0, 0, 250));
    // Years 0 to 99 are those years, not 1900 to 1999 (Date.UTC's reading): 0000 is a leap year, 1900 is not.
    const early = (y: number, mo: number, d: number, h = 0) => new Date(0).setUTCFullYear(y, mo, d) + h * 3_600_000;
    expect(parseTimestamp('00500101T000000')).toBe(early(50, 0, 1));
    expect(parseTimestamp('00000229T120000')).toBe(early(0, 1, 29, 12));
    expect(parseTimestamp('00990229T000000')).toBeUndefined();
  });

  it('an impossible et is refused by McsClient (4000), not rolled into a later date', async () => {
    const c = await client();
    for (const et of ['20991301T000000', '20990230T000000', '20991231T236000']) {
      const e = await c.hash({ algorithm: 4, expirationTime: et }).then(() => undefined, (x: unknown) => x);
      expect(e, et).toMatchObject({ rsc: 4000, message: expect.stringMatching(/et/) });
    }
  });
});
