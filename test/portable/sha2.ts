// SHA-2 and HMAC known answers: NIST CAVP (ShortMsg, LongMsg, Monte, HMAC.rsp)
// and RFC 4231, plus streaming and batch equivalence.
import { sha256, sha384, sha512, hash, createHash, hashMany, hmac, createHmac, type HashName } from '../../src/index.ts';
import { type PortableCase, equalHex, equal, equalBytes, unhex, prng } from './harness.ts';
import { parseRsp } from './rsp.ts';

const HASHES: [HashName, string, (d: Uint8Array) => Uint8Array][] = [
  ['SHA-256', 'SHA256', sha256],
  ['SHA-384', 'SHA384', sha384],
  ['SHA-512', 'SHA512', sha512],
];

export const sha2Cases: PortableCase[] = [];

for (const [name, file, fn] of HASHES) {
  for (const kind of ['ShortMsg', 'LongMsg']) {
    sha2Cases.push({
      name: `CAVP ${file}${kind}`,
      async run(read) {
        const recs = parseRsp(await read(`nist/sha2/${file}${kind}.rsp`));
        equal(recs.length > 60, true, 'vector count');
        for (const { fields } of recs) {
          const len = Number(fields.Len) / 8;
          const msg = unhex(fields.Msg!).subarray(0, len);
          equalHex(fn(msg), fields.MD!, `${name} Len=${fields.Len}`);
          equalHex(createHash(name).update(msg).digest(), fields.MD!, `${name} streaming Len=${fields.Len}`);
        }
      },
    });
  }
  sha2Cases.push({
    name: `CAVP ${file}Monte`,
    async run(read) {
      const recs = parseRsp(await read(`nist/sha2/${file}Monte.rsp`));
      let seed = unhex(recs[0]!.fields.Seed!);
      const checkpoints = recs.filter((r) => r.fields.MD !== undefined);
      equal(checkpoints.length, 100, 'Monte checkpoints');
      for (const { fields } of checkpoints) {
        let md0 = seed, md1 = seed, md2 = seed;
        for (let i = 3; i < 1003; i++) {
          const m = new Uint8Array(md0.length * 3);
          m.set(md0, 0); m.set(md1, md0.length); m.set(md2, 2 * md0.length);
          const mdi = hash(name, m);
          md0 = md1; md1 = md2; md2 = mdi;
        }
        seed = md2;
        equalHex(seed, fields.MD!, `${name} Monte COUNT=${fields.COUNT}`);
      }
    },
  });
}

sha2Cases.push({
  name: 'CAVP HMAC.rsp (SHA-256/384/512 sections)',
  async run(read) {
    const byL: Record<string, HashName> = { '32': 'SHA-256', '48': 'SHA-384', '64': 'SHA-512' };
    let n = 0;
    for (const { section, fields } of parseRsp(await read('nist/hmac/HMAC.rsp'))) {
      const h = byL[section.L!];
      if (!h || fields.Mac === undefined) continue;
      const tlen = Number(fields.Tlen);
      const mac = hmac(h, unhex(fields.Key!), unhex(fields.Msg!)).subarray(0, tlen);
      equalHex(mac, fields.Mac, `${h} HMAC COUNT=${fields.Count}`);
      n++;
    }
    equal(n, 900, 'HMAC vectors for the SHA-2 sizes');
  },
});

sha2Cases.push({
  name: 'RFC 4231',
  async run(read) {
    const cases = JSON.parse(await read('rfc/rfc4231_hmac_sha2.json')) as { name: string; hash: string; key: string; data: string; mac: string }[];
    let n = 0;
    for (const c of cases) {
      if (c.hash === 'SHA-224') continue;
      const h = c.hash as HashName;
      const mac = hmac(h, unhex(c.key), unhex(c.data));
      equalHex(mac.subarray(0, c.mac.length / 2), c.mac, c.name);
      const streamed = createHmac(h, unhex(c.key)).update(unhex(c.data)).digest();
      equalBytes(streamed, mac, `${c.name} streaming`);
      n++;
    }
    equal(n, 21, 'RFC 4231 cases for SHA-256/384/512');
  },
});

sha2Cases.push({
  name: 'streaming with random chunk boundaries equals one-shot',
  run() {
    const rnd = prng(0x5eed);
    for (const [name, , fn] of HASHES) {
      for (let trial = 0; trial < 60; trial++) {
        const msg = rnd(rnd(2)[0]! * 5 + rnd(1)[0]!);
        const key = rnd(rnd(1)[0]! % 200);
        const h = createHash(name);
        const m = createHmac(name, key);
        for (let off = 0; off < msg.length; ) {
          const step = Math.min(msg.length - off, rnd(1)[0]! % 150);
          h.update(msg.subarray(off, off + step));
          m.update(msg.subarray(off, off + step));
          off += step;
        }
        equalBytes(h.digest(), fn(msg), `${name} streaming len=${msg.length}`);
        equalBytes(m.digest(), hmac(name, key, msg), `HMAC-${name} streaming len=${msg.length}`);
      }
    }
  },
});

sha2Cases.push({
  name: 'batch equals one call per message',
  run() {
    const rnd = prng(77);
    for (const [name, , fn] of HASHES) {
      for (const sizes of [[], [0], [64, 64, 64, 64], Array(37).fill(64), Array.from({ length: 41 }, (_, i) => (i * 13) % 300), Array(9).fill(55), Array(8).fill(56), Array(12).fill(119)]) {
        const msgs = sizes.map((s: number) => rnd(s));
        const out = hashMany(name, msgs);
        equal(out.length, msgs.length, 'batch length');
        msgs.forEach((m, i) => equalBytes(out[i]!, fn(m), `${name} batch message ${i} of ${msgs.length} (len ${m.length})`));
      }
      // More than fits in one I/O window, including a message larger than the window.
      const many = [rnd(70000), ...Array.from({ length: 2100 }, () => rnd(40))];
      const out = hashMany(name, many);
      many.forEach((m, i) => { if (i % 97 === 0 || i === 0) equalBytes(out[i]!, fn(m), `${name} large batch message ${i}`); });
    }
  },
});
