// A backend may answer an operation's end (final, sign, verify) at once or
// with a promise (backend.ts MaybePromise): the PC/SC SE answers with
// promises, the software SE at once. The engine must answer the same either
// way: the same rsc and m2m:dbg for a failed operation, no stale result left
// behind it, and a public key imported for one verification deleted again
// also when the verification fails (thrown now or rejected later). And a
// stream that fails while the data arrives is dropped, not used half-fed.
import { describe, expect, it } from 'vitest';
import { cbc, ecdsa, hmac, InvalidInputError, McsEngine, sha256, SoftwareBackend, type McsResponse, type CipherAlgorithm, type CipherParams, type CipherStream, type KeyHandle, type KeyKind, type KeySpec, type SignatureAlgorithm, type SignatureOptions, type SignatureStream } from '../../src/index.ts';
import { runInNewContext } from 'node:vm';
import { b64, body, ok, Session } from '../portable/mcs-kit.ts';
import { formatTimestamp } from '../../src/mcs/codec.ts';

type Mode = 'at once' | 'promise' | 'promise of another realm';

// A vm context's Promise: an iframe's or a worker bridge's promise is no `instanceof Promise` here either.
const ForeignPromise = runInNewContext('Promise') as PromiseConstructor;

/** Rejected later instead of thrown now, resolved instead of returned, in the promise modes. */
function answer<T>(mode: Mode, fn: () => T): T | Promise<T> {
  if (mode === 'at once') return fn();
  const P = mode === 'promise' ? Promise : ForeignPromise;
  try {
    const v = fn();
    return new P<T>((resolve) => resolve(v));
  } catch (e) {
    return new P<T>((_, reject) => reject(e));
  }
}

/** The software SE, answering operations' ends as `mode` says; its verifications can be made to fail. */
class Observed extends SoftwareBackend {
  imported = 0;
  released = 0;
  failVerify = false;
  readonly #mode: Mode;

  constructor(mode: Mode) {
    super();
    this.#mode = mode;
  }

  override async importKey(spec: KeySpec, kind: KeyKind, material: Uint8Array): Promise<KeyHandle> {
    const key = await super.importKey(spec, kind, material);
    this.imported++;
    return key;
  }

  override releaseKey(key: KeyHandle): void {
    this.released++;
    super.releaseKey(key);
  }

  override cipher(algorithm: CipherAlgorithm, key: KeyHandle, direction: 'encrypt' | 'decrypt', params: CipherParams): CipherStream {
    const s = super.cipher(algorithm, key, direction, params);
    const mode = this.#mode;
    return { update: (d, into) => s.update(d, into), final: (last, into) => answer(mode, () => s.final(last, into) as Uint8Array), abort: () => s.abort() };
  }

  override signature(algorithm: SignatureAlgorithm, key: KeyHandle, options: SignatureOptions): SignatureStream {
    const s = super.signature(algorithm, key, options);
    const mode = this.#mode;
    return {
      update: (d) => s.update(d),
      sign: (last) => answer(mode, () => s.sign(last) as Uint8Array),
      verify: (sig, last) => answer(mode, () => {
        if (this.failVerify) throw new InvalidInputError('verification failed in the backend');
        return s.verify(sig, last) as boolean;
      }),
      abort: () => s.abort(),
    };
  }
}

interface Outcome { rsc: number; dbg: unknown; after: unknown; keysLeft?: number }

async function scenario(mode: Mode): Promise<Outcome[]> {
  const backend = new Observed(mode);
  const engine = await McsEngine.create({ backends: [backend] });
  const s = new Session(engine, 'CAE1');
  await s.register();
  const outcomes: Outcome[] = [];
  const key = new Uint8Array(16).fill(7), iv = new Uint8Array(16).fill(9);
  const dbg = (r: { pc?: unknown }) => (r.pc as Record<string, unknown> | undefined)?.['m2m:dbg'];

  // GCM: a result first, then a decryption whose tag fails.
  ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'g', Calg: 1001, mbs: 256, kDt: b64(key) } }), 2001, 'gcm');
  ok(await s.create(s.path('reg', 'g'), 20001, { 'senv:algP': { nc: b64(new Uint8Array(12)) } }), 2001, 'nonce');
  ok(await s.update(s.path('reg', 'g'), { 'senv:Cph': { msg: b64(new Uint8Array(40)) } }), 2004, 'message');
  ok(await s.retrieve(s.path('reg', 'g', 'encrypt')), 2000, 'encrypt');
  ok(await s.update(s.path('reg', 'g'), { 'senv:Cph': { msg: b64(new Uint8Array(40).fill(1)) } }), 2004, 'forged');
  let r = await s.retrieve(s.path('reg', 'g', 'decrypt'));
  outcomes.push({ rsc: r.rsc, dbg: dbg(r), after: body(await s.retrieve(s.path('reg', 'g')), 'senv:Cph').cD });

  // CBC with PKCS#5: a block whose padding is bad.
  ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 24, mbs: 256, kDt: b64(key) } }), 2001, 'cbc');
  ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { iV: b64(iv) } }), 2001, 'iv');
  ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(cbc(key, iv, { padding: 'none' }).encrypt(new Uint8Array(16))) } }), 2004, 'bad padding');
  r = await s.retrieve(s.path('reg', 'c', 'decrypt'));
  outcomes.push({ rsc: r.rsc, dbg: dbg(r), after: body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').cD });

  // ECDSA verification under kInf: the public key is imported for it and deleted after, whatever happened.
  const ec = ecdsa('P-256');
  const pair = ec.keygen();
  const m = new Uint8Array(20);
  ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'v', Salg: 33, kInf: b64(pair.publicKey), msg: b64(m), Sgn: b64(ec.sign(m, pair.secretKey)) } }), 2001, 'verify-only');
  for (const fail of [false, true]) {
    backend.failVerify = fail;
    const [imported, released] = [backend.imported, backend.released];
    if (fail) ok(await s.update(s.path('reg', 'v'), { 'senv:Sgn': { msg: b64(m) } }), 2004, 'message again');
    r = await s.retrieve(s.path('reg', 'v', 'vSgn'));
    expect(backend.imported - imported, `${mode}: a key imported for the verification`).toBe(1);
    outcomes.push({ rsc: r.rsc, dbg: dbg(r), after: body(await s.retrieve(s.path('reg', 'v')), 'senv:Sgn').vR, keysLeft: (backend.imported - imported) - (backend.released - released) });
  }
  await engine.close();
  return outcomes;
}

describe('Mcs over a backend that answers with promises', () => {
  it('answers as over one that answers at once: failures mapped alike, no stale result, imported keys deleted', async () => {
    const now = await scenario('at once');
    const later = await scenario('promise');
    const foreign = await scenario('promise of another realm');
    expect(now.map((o) => o.rsc)).toEqual([4102, 4102, 2000, 5000]);
    expect(now.slice(0, 2).map((o) => o.after), 'no calculatedData after a failed decryption').toEqual([undefined, undefined]);
    expect(now.map((o) => o.keysLeft).slice(2), 'the public key deleted after each verification').toEqual([0, 0]);
    expect(later).toEqual(now);
    expect(foreign, 'a promise of another realm is waited for, never taken for the value').toEqual(now);
  });
});

/** The software SE whose next digest stream fails its first update (a card that lost a command, say). */
class FaultyStream extends SoftwareBackend {
  faults = 0;
  override digest(algorithm: Parameters<SoftwareBackend['digest']>[0]): ReturnType<SoftwareBackend['digest']> {
    const s = super.digest(algorithm);
    let first = true;
    return {
      update: (d) => {
        if (first) {
          first = false;
          this.faults++;
          return Promise.reject(new Error('lost'));
        }
        return s.update(d);
      },
      final: (last) => s.final(last),
      abort: () => s.abort(),
    };
  }
}

describe('a stream that fails while the data arrives', () => {
  it('is dropped, and the operation runs over the whole message from the start', async () => {
    const backend = new FaultyStream();
    const engine = await McsEngine.create({ backends: [backend] });
    const s = new Session(engine, 'CAE1');
    await s.register();
    ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
    // Longer than a batch, so it streams as it arrives; the stream's first piece fails.
    const m = new Uint8Array(40000).map((_, i) => i * 13);
    ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(m) } }), 2004, 'message');
    const hv = body(ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'hash'), 'senv:Hsh').Hv;
    expect(backend.faults, 'the fault happened').toBeGreaterThan(0);
    expect(hv).toBe(b64(sha256(m)));
    await engine.close();
  });
});

describe('a backend whose releaseKey or deleteKey throws (breaking its contract)', () => {
  it('does not leave a DELETE half applied: the resource and its registration\'s children go whole, the SE serves on', async () => {
    class Throwing extends SoftwareBackend {
      override releaseKey(key: KeyHandle): void {
        super.releaseKey(key);
        throw new Error('release failed');
      }
    }
    const engine = await McsEngine.create({ backends: [new Throwing()] });
    const s = new Session(engine, 'CAE1');
    await s.register();
    ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: b64(new Uint8Array(16).fill(1)) } }), 2001, 'cipher');
    ok(await s.delete(s.path('reg', 'c')), 2002, 'cipher deleted');
    expect((await s.retrieve(s.path('reg', 'c'))).rsc).toBe(4004);
    ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(new Uint8Array(32).fill(2)) } }), 2001, 'mac');
    const memory = body(ok(await s.retrieve(s.path('reg', 'memory')), 2000, 'memory'), 'm2m:mem').ri as string;
    ok(await s.delete(s.seId), 2002, 'deregistered');
    await s.register();
    expect((await s.retrieve(`${s.seId}/${memory}`)).rsc, 'the old registration\'s children gone from every index').toBe(4004);
    ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4, msg: b64(Uint8Array.of(1)) } }), 2001, 'the SE serves on');
    await engine.close();
  });
});

describe('a backend whose releaseKey, deleteKey or stream abort is async and rejects (breaking its contract)', () => {
  it('leaves no unhandled rejection (which would end a Node process): the removals go on, the SE serves on', async () => {
    class Rejecting extends SoftwareBackend {
      // `async` methods where the contract says void: TypeScript accepts them, so a backend may well have them.
      override async releaseKey(key: KeyHandle): Promise<void> {
        super.releaseKey(key);
        throw new Error('release failed');
      }
      override digest(algorithm: Parameters<SoftwareBackend['digest']>[0]): ReturnType<SoftwareBackend['digest']> {
        const s = super.digest(algorithm);
        return {
          update: () => Promise.reject(new Error('lost')),
          final: (last) => s.final(last),
          abort: async () => {
            s.abort();
            throw new Error('abort failed');
          },
        };
      }
    }
    class RejectingDelete extends SoftwareBackend {
      async deleteKey(key: KeyHandle): Promise<void> {
        this.releaseKey(key);
        throw new Error('delete failed');
      }
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const backend of [new Rejecting(), new RejectingDelete()]) {
        const engine = await McsEngine.create({ backends: [backend] });
        const s = new Session(engine, 'CAE1');
        await s.register();
        ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 64, kDt: b64(new Uint8Array(16).fill(1)) } }), 2001, 'cipher');
        ok(await s.delete(s.path('reg', 'c')), 2002, 'cipher deleted');
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        // Longer than a batch: it streams as it arrives, the update fails, and the stream is aborted.
        const m = new Uint8Array(40000).map((_, i) => i * 7);
        ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(m) } }), 2004, 'message');
        const hv = body(ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'hash'), 'senv:Hsh').Hv;
        expect(hv).toBe(b64(sha256(m)));
        await engine.close();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled.map((e) => (e as Error).message)).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

/** The software SE whose streams answer on a later turn of the event loop, as an HSM over the network does. */
class Later extends SoftwareBackend {
  override signature(algorithm: SignatureAlgorithm, key: KeyHandle, options: SignatureOptions): SignatureStream {
    const s = super.signature(algorithm, key, options);
    const later = <T>(fn: () => T | Promise<T>) => new Promise<T>((resolve, reject) => setTimeout(() => void Promise.resolve().then(fn).then(resolve, reject), 1));
    return {
      // The chunk is lent until the promise settles (docs/mcs.md "Writing a backend"): no copy needed.
      update: (d) => later(() => s.update(d)),
      sign: (last) => later(() => s.sign(last)),
      verify: (sig, last) => s.verify(sig, last),
      abort: () => s.abort(),
    };
  }
}

// docs/mcs.md "Data in chunks", changes between chunks: each chunk and the operation are checked
// at their own turn, a change applies from the next request on, earlier chunks stay the resource's,
// what would change the result drops the stream, so the operation replays the whole message, and
// a request under way when the et passes runs to its end (docs/mcs.md expirationTime).
describe('changes between the chunks of a message, with requests in flight', () => {
  for (const backend of ['at once', 'later'] as const) {
    it(`apply from the next request on, whoever sent the chunks (${backend})`, async () => {
      let now = Date.UTC(2026, 10, 26, 12);
      const engine = await McsEngine.create({ backends: [backend === 'later' ? new Later() : new SoftwareBackend()], clock: () => now });
      const owner = new Session(engine, 'CAE1'), grantee = new Session(engine, 'CAE2'), third = new Session(engine, 'CAE3');
      await owner.register();
      await grantee.register('reg2');
      await third.register('reg3');
      const grant = (acor: string[]) => ({ 'm2m:acp': { pv: { acr: [{ acor, acop: 6 }] } } });
      const policy = body(ok(await owner.create(owner.seId, 1, { 'm2m:acp': { rn: 'p', ...grant(['CAE2', 'CAE3'])['m2m:acp'], pvs: { acr: [{ acor: ['CAE1'], acop: 63 }] } } }), 2001, 'policy'), 'm2m:acp').ri as string;
      const key = new Uint8Array(32).fill(5);
      const mac = owner.path('reg', 'm');
      ok(await owner.create(owner.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 25, kDt: b64(key), acpi: [policy], et: formatTimestamp(now + 60_000) } }), 2001, 'HMAC');
      // Longer than a batch: each streams as it arrives.
      const message = (k: number) => new Uint8Array(40000).map((_, i) => i * k);
      const c1 = message(1), c2 = message(2), c3 = message(3), c4 = message(4);
      const chunk = (s: Session, c: Uint8Array) => s.update(mac, { 'senv:Sgn': { msg: b64(c) } });
      const rscs = (rs: McsResponse[]) => rs.map((r) => r.rsc);
      ok(await chunk(grantee, c1), 2004, 'the grantee\'s first chunk');
      // Sent together: the chunk before the narrowing is served under the grant, those after it are not.
      let rs: McsResponse[] = await Promise.all([chunk(grantee, c2), owner.update(owner.path('reg', 'p'), grant(['CAE3'])), chunk(grantee, c3), grantee.retrieve(`${mac}/cSgn`), third.retrieve(`${mac}/cSgn`)]);
      expect(rscs(rs), 'narrowed between chunks').toEqual([2004, 2004, 4103, 4103, 2000]);
      expect(body(rs[4]!, 'senv:Sgn').Sgn, 'the grantee\'s chunks sent before stay the resource\'s').toBe(b64(hmac('SHA-256', key, new Uint8Array([...c1, ...c2]))));
      // A reboot between chunks drops the stream: the operation replays the whole message.
      ok(await chunk(third, c1), 2004, 'a new message');
      rs = await Promise.all([owner.update(owner.path('reg', 'coldReset'), { 'senv:Srbt': { rb: true } }), chunk(third, c2), third.retrieve(`${mac}/cSgn`)]);
      expect(rscs(rs), 'rebooted between chunks').toEqual([2004, 2004, 2000]);
      expect(body(rs[2]!, 'senv:Sgn').Sgn).toBe(b64(hmac('SHA-256', key, new Uint8Array([...c1, ...c2]))));
      // The policy deleted while the resource names it: nothing grants, and a new one of that name is another policy.
      ok(await chunk(third, c3), 2004, 'a new message');
      rs = await Promise.all([owner.delete(owner.path('reg', 'p')), chunk(third, c4), third.retrieve(`${mac}/cSgn`)]);
      expect(rscs(rs), 'policy deleted between chunks').toEqual([2002, 4103, 4103]);
      ok(await owner.create(owner.seId, 1, { 'm2m:acp': { rn: 'p', ...grant(['CAE3'])['m2m:acp'], pvs: { acr: [{ acor: ['CAE1'], acop: 63 }] } } }), 2001, 'a policy of the same name');
      expect((await third.retrieve(`${mac}/cSgn`)).rsc, 'acpi keeps the resource ID of the policy that is gone').toBe(4103);
      expect(body(ok(await owner.retrieve(`${mac}/cSgn`), 2000, 'the owner'), 'senv:Sgn').Sgn).toBe(b64(hmac('SHA-256', key, c3)));
      // Deregistered, and expired, between chunks.
      ok(await owner.update(mac, { 'senv:Sgn': { acpi: [body(await owner.retrieve(owner.path('reg', 'p')), 'm2m:acp').ri] } }), 2004, 'pointed at the new policy');
      ok(await chunk(third, c1), 2004, 'a new message');
      rs = await Promise.all([third.delete(third.seId), chunk(third, c2), third.retrieve(`${mac}/cSgn`)]);
      expect(rscs(rs), 'deregistered between chunks').toEqual([2002, 4106, 4106]);
      ok(await chunk(owner, c2), 2004, 'the owner goes on');
      // The et passes while the operation is under way: it runs to its end, and the removal comes next.
      const signing = owner.retrieve(`${mac}/cSgn`);
      now += 60_000;
      rs = await Promise.all([signing, chunk(owner, c3), owner.retrieve(`${mac}/cSgn`)]);
      expect(rscs(rs), 'expired during an operation, before the next chunk').toEqual([2000, 4004, 4004]);
      expect(body(rs[0]!, 'senv:Sgn').Sgn).toBe(b64(hmac('SHA-256', key, new Uint8Array([...c1, ...c2]))));
      await engine.close();
    });
  }
});
