// McsClient's per-call request options: every method takes a last
// `options` argument whose requestExpiration replaces the client's for that
// call. Driven from one table of the methods, on an SE that stops answering.
import { CipherResource, gcm, HashResource, InvalidInputError, McsClient, McsError, PolicyResource, RandResource, SensitiveDataResource, SignatureResource, type McsEngine, type McsResource, type RequestOptions } from '../../src/index.ts';
import { AssertionError, equal, hex, ok as assert, unhex, utf8, type PortableCase } from './harness.ts';
import { engineWith, Session, softwareSe } from './mcs-kit.ts';

const KEY = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const NONCE = Uint8Array.from({ length: 12 }, (_, i) => 0xa0 + i);
const ABC = utf8('abc');
const SHA256_ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
// RFC 4231 test case 2 (HMAC-SHA-256, signature algorithm 25).
const JEFE_KEY = utf8('Jefe');
const JEFE_DATA = utf8('what do ya want for nothing?');
const JEFE_MAC = '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843';
const RULES = [{ originators: ['CAE1'], operations: 63 }];

/**
 * One SE and, for every method of the table, an object to call it on, bound to a client of CAE1
 * whose own requestExpiration is `clientWide`. The resources were made by a client without one.
 */
interface Fixture {
  engine: McsEngine;
  client: McsClient;
  /** CAE9, not registered yet. */
  newcomer: McsClient;
  /** CAE8, registered. */
  leaving: McsClient;
  hashes: HashResource[];
  ciphers: CipherResource[];
  signatures: SignatureResource[];
  rand: RandResource;
  data: SensitiveDataResource[];
  policy: PolicyResource;
  /** The same resources, bound to the client that made them (no requestExpiration): a call on one of them queues the table's behind it. */
  mine: McsResource[];
  /** Holds the SE: a generateRand that waits for random bytes until the function given back is called. */
  hold(): Promise<() => Promise<void>>;
}

async function fixture(clientWide: number): Promise<Fixture> {
  let gate = Promise.resolve();
  let waiting = () => {};
  const engine = await engineWith(() => {
    const b = softwareSe();
    const random = b.random.bind(b);
    b.random = async (type, length) => {
      waiting();
      await gate;
      return random(type, length);
    };
    return b;
  });
  try {
    const owner = await new McsClient(engine, 'CAE1').register('me');
    const client = new McsClient(engine, 'CAE1', undefined, { requestExpiration: clientWide });
    const opts = { requestExpiration: clientWide };
    const newcomer = new McsClient(engine, 'CAE9', undefined, opts);
    const leaving = await new McsClient(engine, 'CAE8', undefined, opts).register('leaving');
    const message = async <T extends { update(c: Uint8Array): Promise<unknown> }>(r: T, m?: Uint8Array): Promise<T> => {
      if (m) await r.update(m);
      return r;
    };
    const hashes = await Promise.all([ABC, undefined, ABC].map(async (m) => message(await owner.hash({ algorithm: 4 }), m)));
    const sealed = gcm(KEY, NONCE).encrypt(ABC);
    const ciphers = await Promise.all([
      message(await owner.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY, nonce: NONCE }), ABC),
      message(await owner.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY, nonce: NONCE }), sealed),
      owner.cipher({ algorithm: 1001, maxByteSize: 64, exportable: true }),
      owner.cipher({ algorithm: 1001, maxByteSize: 64, key: KEY }),
    ]);
    const signatures = await Promise.all([
      message(await owner.signature({ algorithm: 25, key: JEFE_KEY }), JEFE_DATA),
      message(await owner.signature({ algorithm: 25, key: JEFE_KEY }), JEFE_DATA),
      owner.signature({ algorithm: 33 }),
    ]);
    const rand = await owner.rand({ rngType: 1 });
    // Another length than the one held: generate(24) is three requests (generateRand, UPDATE Dsz, generateRand).
    await rand.set({ Dsz: 16 });
    const data = await Promise.all(Array.from({ length: 5 }, () => owner.sensitiveData(ABC)));
    const policy = await owner.accessControlPolicy({ privileges: RULES, selfPrivileges: RULES });
    // Its own <rand>: the held call is queued on no resource of the table, only on the SE.
    const held = await owner.rand({ rngType: 1 });
    await held.set({ Dsz: 8 });
    const generateRand = `${held.address}/generateRand`;
    const hold = async () => {
      let open!: () => void;
      gate = new Promise<void>((r) => (open = r));
      const asked = new Promise<void>((r) => (waiting = r));
      const answer = owner.request(2, generateRand, 'senv:Rnd');
      await asked;
      return async () => {
        open();
        await answer;
      };
    };
    return {
      engine, client, newcomer, leaving, hold,
      hashes: hashes.map((h) => new HashResource(client, h.address)),
      ciphers: ciphers.map((c) => new CipherResource(client, c.address)),
      signatures: signatures.map((g) => new SignatureResource(client, g.address, g.algorithm)),
      rand: new RandResource(client, rand.address),
      data: data.map((d) => new SensitiveDataResource(client, d.address)),
      policy: new PolicyResource(client, policy.address),
      mine: [...hashes, ...ciphers, ...signatures, rand, ...data, policy],
    };
  } catch (e) {
    await engine.close();
    throw e;
  }
}

/** A method of McsClient or of a resource object, called with `options` last, and what it answers when served. */
interface Method {
  name: string;
  call(f: Fixture, options: unknown): Promise<unknown>;
  answers(result: unknown, f: Fixture): boolean;
}

const bytes = (r: unknown) => (r instanceof Uint8Array ? hex(r) : `no bytes: ${String(r)}`);

// The SE serves them in this order once it answers again: reboot last, after the calls whose results are known answers.
const METHODS: Method[] = [
  { name: 'register', call: (f, o) => f.newcomer.register(undefined, o as RequestOptions), answers: (r, f) => r === f.newcomer },
  { name: 'deregister', call: (f, o) => f.leaving.deregister(o as RequestOptions), answers: (r) => r === undefined },
  { name: 'registration', call: (f, o) => f.client.registration(o as RequestOptions), answers: (r) => (r as { rn?: unknown }).rn === 'me' },
  { name: 'updateRegistration', call: (f, o) => f.client.updateRegistration({ hcl: 'per call' }, o as RequestOptions), answers: (r) => (r as { hcl?: unknown }).hcl === 'per call' },
  { name: 'deviceInfo', call: (f, o) => f.client.deviceInfo(o as RequestOptions), answers: (r) => (r as { man?: unknown }).man === 'onem2m-senv' },
  { name: 'memory', call: (f, o) => f.client.memory(o as RequestOptions), answers: (r) => (r as { total?: unknown }).total === 64 * 1024 * 1024 },
  { name: 'retrieve', call: (f, o) => f.data[0]!.retrieve(o as RequestOptions), answers: (r) => bytes((r as { msg?: unknown }).msg) === hex(ABC) },
  { name: 'delete', call: (f, o) => f.data[1]!.delete(o as RequestOptions), answers: (r) => r === undefined },
  { name: 'set', call: (f, o) => f.data[2]!.set({ msg: JEFE_DATA }, o as RequestOptions), answers: (r) => (r as { cbs?: unknown }).cbs === JEFE_DATA.length },
  { name: 'read', call: (f, o) => f.data[3]!.read(o as RequestOptions), answers: (r) => bytes(r) === hex(ABC) },
  { name: 'write', call: (f, o) => f.data[4]!.write(JEFE_DATA, o as RequestOptions), answers: (r) => r === undefined },
  { name: 'calculate', call: (f, o) => f.hashes[0]!.calculate(o as RequestOptions), answers: (r) => bytes(r) === SHA256_ABC },
  { name: 'update', call: (f, o) => f.hashes[1]!.update(ABC, o as RequestOptions), answers: (r, f) => r === f.hashes[1] },
  { name: 'discard', call: (f, o) => f.hashes[2]!.discard(o as RequestOptions), answers: (r, f) => r === f.hashes[2] },
  { name: 'encrypt', call: (f, o) => f.ciphers[0]!.encrypt(o as RequestOptions), answers: (r) => bytes(r) === hex(gcm(KEY, NONCE).encrypt(ABC)) },
  { name: 'decrypt', call: (f, o) => f.ciphers[1]!.decrypt(o as RequestOptions), answers: (r) => bytes(r) === hex(ABC) },
  { name: 'generateKey (cipher)', call: (f, o) => f.ciphers[2]!.generateKey(o as RequestOptions), answers: (r) => r instanceof Uint8Array && r.length === 16 },
  // Made from an address, the object tries the UPDATE first: a 4004, then the CREATE.
  { name: 'setParameters', call: (f, o) => f.ciphers[3]!.setParameters({ nonce: NONCE }, o as RequestOptions), answers: (r) => r === undefined },
  { name: 'sign', call: (f, o) => f.signatures[0]!.sign(o as RequestOptions), answers: (r) => bytes(r) === JEFE_MAC },
  { name: 'verify', call: (f, o) => f.signatures[1]!.verify(unhex(JEFE_MAC), o as RequestOptions), answers: (r) => r === true },
  { name: 'generateKey (signature)', call: (f, o) => f.signatures[2]!.generateKey(o as RequestOptions), answers: (r) => (r as { publicKey?: Uint8Array }).publicKey?.length === 65 },
  { name: 'generate', call: (f, o) => f.rand.generate(24, o as RequestOptions), answers: (r) => r instanceof Uint8Array && r.length === 24 },
  { name: 'policy update', call: (f, o) => f.policy.update({ selfPrivileges: [{ originators: ['CAE1', 'CAE2'], operations: 63 }] }, o as RequestOptions), answers: (r) => r === undefined },
  { name: 'reboot', call: (f, o) => f.client.reboot(undefined, o as RequestOptions), answers: (r) => r === undefined },
];

/** What each originator's registration and every resource of `f` show (base64 mode), to compare before and after. */
async function state(f: Fixture): Promise<string> {
  const me = new Session(f.engine, 'CAE1');
  const ri = (await me.retrieve(me.seId)).pc?.['senv:Senv'] as { ri: string };
  const views = [
    ...['CAE1', 'CAE8', 'CAE9'].map((fr) => new Session(f.engine, fr).retrieve(me.seId)),
    ...[...f.mine.map((r) => r.address), me.path(ri.ri, 'coldReset')].map((a) => me.retrieve(a)),
  ];
  return JSON.stringify((await Promise.all(views)).map((r) => [r.rsc, r.pc]));
}

/** How a call ended: its result, its error, or neither within the time given. */
type Outcome = { v: unknown } | { e: unknown } | 'still pending';

const within = (p: Promise<unknown>, ms: number): Promise<Outcome> => Promise.race([p.then((v) => ({ v }), (e: unknown) => ({ e })), new Promise<'still pending'>((r) => setTimeout(r, ms, 'still pending'))]);

const shown = (o: Outcome) => (o === 'still pending' ? o : 'e' in o ? String(o.e) : 'answered');

/** The calls whose outcome `ok` refuses, each named by its method (in METHODS' order, round after round) with what it gave: '' when none. */
const misses = (outcomes: readonly Outcome[], ok: (o: Outcome, m: Method) => boolean): string =>
  outcomes.flatMap((o, i) => {
    const m = METHODS[i % METHODS.length]!;
    return ok(o, m) ? [] : [`${m.name}: ${shown(o)}`];
  }).join('; ');

export const mcsClientOptionCases: PortableCase[] = [
  {
    name: 'McsClient: every method\'s own requestExpiration, tighter than the client\'s, bounds it behind an SE that stopped answering: 4008 (McsError), nothing changed',
    async run() {
      const f = await fixture(600_000);
      try {
        const before = await state(f);
        const release = await f.hold();
        let outcomes: Outcome[];
        let ahead: Promise<unknown>[] = [];
        try {
          const first = METHODS.map((m) => m.call(f, { requestExpiration: 40 }));
          // Then, on each resource, a call of no expiration that the SE holds: each method's second call waits behind it
          // in the client, never sent (a method of the client itself waits on the SE again).
          ahead = f.mine.map((r) => r.retrieve());
          const second = METHODS.map((m) => m.call(f, { requestExpiration: 40 }));
          outcomes = await Promise.all([...first, ...second].map((c) => within(c, 2000)));
        } finally {
          await release();
        }
        await Promise.all(ahead);
        equal(misses(outcomes, (o) => typeof o === 'object' && 'e' in o && o.e instanceof McsError && o.e.rsc === 4008), '', 'calls that did not expire');
        equal(await state(f), before, 'what the SE holds');
      } finally {
        await f.engine.close();
      }
    },
  },
  {
    name: 'McsClient: every method\'s own requestExpiration, more generous than the client\'s, lifts it: the call waits for the SE and gets its known answer',
    async run() {
      const f = await fixture(30);
      try {
        const release = await f.hold();
        let early: Outcome[];
        const calls = METHODS.map((m) => m.call(f, { requestExpiration: 600_000 }));
        try {
          // Well past the client's 30 ms, no call has settled.
          early = await Promise.all(calls.map((c) => within(c, 150)));
        } finally {
          await release();
        }
        equal(misses(early, (o) => o === 'still pending'), '', 'calls settled while the SE was held');
        const results = await Promise.all(calls.map((c) => within(c, 10_000)));
        equal(misses(results, (o, m) => typeof o === 'object' && 'v' in o && m.answers(o.v, f)), '', 'calls without their known answer');
      } finally {
        await f.engine.close();
      }
    },
  },
  {
    name: 'McsClient: a bad options argument of any method rejects with request()\'s InvalidInputError, nothing sent',
    async run() {
      const f = await fixture(600_000);
      try {
        const before = await state(f);
        for (const bad of [5, 'x', [], { requestExpiration: -1 }, { requestExpiration: 1.5 }, { requestExpiration: '100' }, { requestExpiration: null }]) {
          const expected = await f.client.request(2, f.client.seId, 'senv:Senv', undefined, undefined, bad as RequestOptions).then(() => undefined, (e: unknown) => e);
          assert(expected instanceof InvalidInputError, `request() with ${JSON.stringify(bad)}: ${String(expected)}`);
          for (const m of METHODS) {
            let call: Promise<unknown>;
            try {
              call = m.call(f, bad);
            } catch (e) {
              throw new AssertionError(`${m.name} with ${JSON.stringify(bad)} threw instead of rejecting: ${String(e)}`);
            }
            const e = await call.then(() => undefined, (x: unknown) => x);
            assert(e instanceof InvalidInputError && e.message === expected.message, `${m.name} with ${JSON.stringify(bad)}: ${String(e)}`);
          }
        }
        equal(await state(f), before, 'what the SE holds');
      } finally {
        await f.engine.close();
      }
    },
  },
];
