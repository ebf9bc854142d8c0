// AES family known answers: NIST CAVP (GCM, CCM, CBC KAT/MMT/MCT, CMAC),
// RFC 3610 and RFC 4493, ISO 9797-1 / CBC-MAC vectors built independently
// (test/vectors/derived), streaming equivalence and the typed errors.
import {
  gcm, ccm, cbc, cmac, cbcMac, createCmac, createCbcMac, aesKey,
  AuthenticationError, LengthError, PaddingError, StateError, UnknownAlgorithmError, InvalidInputError,
  type Aead, type CbcPadding,
} from '../../src/index.ts';
import { type PortableCase, equalHex, equal, equalBytes, ok, throws, unhex, hex, prng } from './harness.ts';
import { parseRsp } from './rsp.ts';

export const aesCases: PortableCase[] = [];

const bits = (s: string | undefined) => Number(s) / 8;
/** Lines of a vector file matching `re`, counted on the text itself: the parser must yield exactly as many cases. */
const lines = (text: string, re: RegExp) => (text.match(re) ?? []).length;
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
};

// ---- GCM ----

for (const size of [128, 256]) {
  aesCases.push({
    name: `CAVP gcmEncryptExtIV${size}`,
    async run(read) {
      let n = 0;
      for (const { section, fields: f } of parseRsp(await read(`nist/aes_gcm/gcmEncryptExtIV${size}.rsp`))) {
        if (f.CT === undefined) continue;
        const g = gcm(unhex(f.Key!), unhex(f.IV!), unhex(f.AAD!), { tagLength: bits(section.Taglen) });
        const out = g.encrypt(unhex(f.PT!));
        equalHex(out, f.CT! + f.Tag!, `GCM-${size} encrypt ${JSON.stringify(section)} Count=${f.Count}`);
        equalHex(g.decrypt(out), f.PT!, `GCM-${size} decrypt back Count=${f.Count}`);
        n++;
      }
      equal(n, 7875, 'vector count');
    },
  });
  aesCases.push({
    name: `CAVP gcmDecrypt${size} (pass and fail)`,
    async run(read) {
      let pass = 0, fail = 0;
      const text = await read(`nist/aes_gcm/gcmDecrypt${size}.rsp`);
      for (const { section, fields: f } of parseRsp(text)) {
        if (f.CT === undefined) continue;
        const g = gcm(unhex(f.Key!), unhex(f.IV!), unhex(f.AAD!), { tagLength: bits(section.Taglen) });
        const input = cat(unhex(f.CT!), unhex(f.Tag!));
        if (f.FAIL !== undefined) {
          throws(() => g.decrypt(input), AuthenticationError, `GCM-${size} must fail Count=${f.Count}`);
          fail++;
        } else {
          equalHex(g.decrypt(input), f.PT!, `GCM-${size} decrypt ${JSON.stringify(section)} Count=${f.Count}`);
          pass++;
        }
      }
      equal(pass + fail, lines(text, /^Count = /gm), 'every record of the file');
      equal(fail, lines(text, /^FAIL/gm), 'every FAIL record');
      ok(pass > 0 && fail > 0, `pass ${pass} / fail ${fail} vectors`);
    },
  });
}

// ---- CCM ----

// CCM files set Key, Nonce and the lengths in earlier records or section
// headers; later records only carry what changes.
function* ccmRecords(text: string): Generator<Record<string, string>> {
  let state: Record<string, string> = {};
  for (const { section, fields } of parseRsp(text)) {
    state = { ...state, ...section, ...fields };
    if (fields.CT !== undefined) yield state;
  }
}

const bytesOf = (hexText: string, len: number) => unhex(hexText).subarray(0, len);

for (const size of [128, 256]) {
  for (const kind of ['VADT', 'VNT', 'VPT', 'VTT']) {
    aesCases.push({
      name: `CAVP CCM ${kind}${size}`,
      async run(read) {
        let n = 0;
        const text = await read(`nist/aes_ccm/${kind}${size}.rsp`);
        for (const r of ccmRecords(text)) {
          const t = Number(r.Tlen), a = bytesOf(r.Adata!, Number(r.Alen)), p = bytesOf(r.Payload!, Number(r.Plen));
          const c = ccm(unhex(r.Key!), unhex(r.Nonce!), a, { tagLength: t });
          equalHex(c.encrypt(p), r.CT!, `CCM ${kind}${size} Count=${r.Count} Alen=${r.Alen} Plen=${r.Plen} Nlen=${r.Nlen} Tlen=${t}`);
          equalBytes(c.decrypt(unhex(r.CT!)), p, `CCM ${kind}${size} decrypt Count=${r.Count}`);
          n++;
        }
        equal(n, lines(text, /^Count = /gm), `${kind}${size}: every record of the file`);
      },
    });
  }
  aesCases.push({
    name: `CAVP CCM DVPT${size} (pass and fail)`,
    async run(read) {
      let pass = 0, fail = 0;
      for (const r of ccmRecords(await read(`nist/aes_ccm/DVPT${size}.rsp`))) {
        const c = ccm(unhex(r.Key!), unhex(r.Nonce!), bytesOf(r.Adata!, Number(r.Alen)), { tagLength: Number(r.Tlen) });
        if (r.Result!.startsWith('Fail')) {
          throws(() => c.decrypt(unhex(r.CT!)), AuthenticationError, `DVPT${size} must fail Count=${r.Count}`);
          fail++;
        } else {
          equalBytes(c.decrypt(unhex(r.CT!)), bytesOf(r.Payload!, Number(r.Plen)), `DVPT${size} Count=${r.Count}`);
          pass++;
        }
      }
      ok(pass >= 80 && fail >= 80, `pass ${pass} / fail ${fail}`);
    },
  });
}

aesCases.push({
  name: 'RFC 3610 packet vectors (CCM, M = 8 and 10, L = 2)',
  async run(read) {
    const vectors = JSON.parse(await read('rfc/rfc3610_aes_ccm.json')) as Record<string, string | number>[];
    equal(vectors.length, 24, 'vector count');
    for (const v of vectors) {
      const c = ccm(unhex(v.key as string), unhex(v.nonce as string), unhex(v.aad as string), { tagLength: v.tag_len as number });
      equalHex(c.encrypt(unhex(v.plaintext as string)), `${v.ciphertext}${v.tag}`, v.name as string);
      equalHex(c.decrypt(unhex(`${v.ciphertext}${v.tag}`)), v.plaintext as string, `${v.name} decrypt`);
    }
  },
});

// ---- CBC ----

const CBC_FILES = [
  'kat/CBCGFSbox128', 'kat/CBCGFSbox256', 'kat/CBCKeySbox128', 'kat/CBCKeySbox256', 'kat/CBCVarKey128',
  'kat/CBCVarKey256', 'kat/CBCVarTxt128', 'kat/CBCVarTxt256', 'mmt/CBCMMT128', 'mmt/CBCMMT256',
];

aesCases.push({
  name: 'CAVP CBC KAT and MMT (128, 256; encrypt and decrypt)',
  async run(read) {
    let n = 0, expected = 0;
    for (const file of CBC_FILES) {
      const text = await read(`nist/aes_cbc/${file}.rsp`);
      expected += lines(text, /^COUNT = /gm);
      for (const { section, fields: f } of parseRsp(text)) {
        if (f.CIPHERTEXT === undefined) continue;
        const c = cbc(unhex(f.KEY!), unhex(f.IV!), { padding: 'none' });
        if (section.ENCRYPT !== undefined) equalHex(c.encrypt(unhex(f.PLAINTEXT!)), f.CIPHERTEXT!, `${file} encrypt COUNT=${f.COUNT}`);
        else equalHex(c.decrypt(unhex(f.CIPHERTEXT!)), f.PLAINTEXT!, `${file} decrypt COUNT=${f.COUNT}`);
        n++;
      }
    }
    equal(n, expected, 'every record of the KAT and MMT files');
  },
});

// AESAVS 6.4.2: each of 100 outer steps chains 1000 CBC blocks, feeding each
// block the output from two blocks before, then derives the next key, IV and
// input from the last two outputs.
function cbcMonte(key: Uint8Array, iv: Uint8Array, first: Uint8Array, decrypt: boolean): { out: Uint8Array; key: Uint8Array; next: Uint8Array } {
  const k = aesKey(key);
  let input: Uint8Array = first, chain: Uint8Array = iv, out: Uint8Array = new Uint8Array(16), before: Uint8Array = new Uint8Array(16);
  try {
    for (let j = 0; j < 1000; j++) {
      const c = cbc(k, chain, { padding: 'none' });
      const o = decrypt ? c.decrypt(input) : c.encrypt(input);
      const nextInput = j === 0 ? iv : out;
      chain = decrypt ? input : o;
      before = out;
      out = o;
      input = nextInput;
    }
  } finally {
    k.destroy();
  }
  const tail = cat(before, out).subarray(32 - key.length);
  return { out, key: key.map((b, i) => b ^ tail[i]!), next: before };
}

for (const size of [128, 256]) {
  aesCases.push({
    name: `CAVP CBCMCT${size} (encrypt and decrypt)`,
    async run(read) {
      const recs = parseRsp(await read(`nist/aes_cbc/mct/CBCMCT${size}.rsp`));
      for (const dir of ['ENCRYPT', 'DECRYPT']) {
        const decrypt = dir === 'DECRYPT';
        const steps = recs.filter((r) => r.section[dir] !== undefined && r.fields.KEY !== undefined);
        equal(steps.length, 100, `${dir} steps`);
        let key = unhex(steps[0]!.fields.KEY!), iv = unhex(steps[0]!.fields.IV!);
        let input = unhex(steps[0]!.fields[decrypt ? 'CIPHERTEXT' : 'PLAINTEXT']!);
        for (const { fields: f } of steps) {
          equalHex(key, f.KEY!, `${dir} COUNT=${f.COUNT} key`);
          const r = cbcMonte(key, iv, input, decrypt);
          equalHex(r.out, f[decrypt ? 'PLAINTEXT' : 'CIPHERTEXT']!, `CBCMCT${size} ${dir} COUNT=${f.COUNT}`);
          key = r.key;
          iv = r.out;
          input = r.next;
        }
      }
    },
  });
}

aesCases.push({
  name: 'ISO 9797-1 methods 1 and 2 with AES-CBC, and CBC-MAC (independently built vectors)',
  async run(read) {
    const doc = JSON.parse(await read('derived/aes_iso9797_cbcmac.json')) as {
      cbc: { padding: CbcPadding; key: string; iv: string; plaintext: string; padded: string; ciphertext: string }[];
      cbcMac: { key: string; msg: string; mac: string }[];
    };
    equal(doc.cbc.length, 40, 'CBC vector count');
    for (const v of doc.cbc) {
      const c = cbc(unhex(v.key), unhex(v.iv), { padding: v.padding });
      equalHex(c.encrypt(unhex(v.plaintext)), v.ciphertext, `${v.padding} encrypt len ${v.plaintext.length / 2}`);
      // Method 1 decryption returns the zero padding too; method 2 removes it.
      equalHex(c.decrypt(unhex(v.ciphertext)), v.padding === 'iso9797-m1' ? v.padded : v.plaintext, `${v.padding} decrypt len ${v.plaintext.length / 2}`);
    }
    equal(doc.cbcMac.length, 10, 'CBC-MAC vector count');
    for (const v of doc.cbcMac) {
      equalHex(cbcMac(unhex(v.key), unhex(v.msg)), v.mac, `CBC-MAC len ${v.msg.length / 2}`);
      const m = createCbcMac(unhex(v.key));
      const msg = unhex(v.msg);
      for (let i = 0; i < msg.length; i += 7) m.update(msg.subarray(i, i + 7));
      equalHex(m.digest(), v.mac, `CBC-MAC streaming len ${msg.length}`);
    }
  },
});

// ---- CMAC ----

for (const size of [128, 256]) {
  aesCases.push({
    name: `CAVP CMACGenAES${size}`,
    async run(read) {
      let n = 0;
      const text = await read(`nist/aes_cmac/CMACGenAES${size}.rsp`);
      for (const { fields: f } of parseRsp(text)) {
        if (f.Mac === undefined) continue;
        const msg = bytesOf(f.Msg!, Number(f.Mlen));
        equalHex(cmac(unhex(f.Key!), msg).subarray(0, Number(f.Tlen)), f.Mac!, `CMACGen${size} Count=${f.Count} Mlen=${f.Mlen}`);
        n++;
      }
      equal(n, lines(text, /^Count = /gm), 'every record of the file');
    },
  });
  aesCases.push({
    name: `CAVP CMACVerAES${size}`,
    async run(read) {
      let pass = 0, fail = 0;
      const text = await read(`nist/aes_cmac/CMACVerAES${size}.rsp`);
      for (const { fields: f } of parseRsp(text)) {
        if (f.Result === undefined) continue;
        const mac = hex(cmac(unhex(f.Key!), bytesOf(f.Msg!, Number(f.Mlen))).subarray(0, Number(f.Tlen)));
        const expectPass = f.Result.startsWith('P');
        equal(mac === f.Mac!.toLowerCase(), expectPass, `CMACVer${size} Count=${f.Count} Result=${f.Result}`);
        if (expectPass) pass++;
        else fail++;
      }
      equal(pass + fail, lines(text, /^Count = /gm), 'every record of the file');
      equal(fail, lines(text, /^Result = F/gm), 'every failing record');
      ok(pass > 0 && fail > 0, `pass ${pass} / fail ${fail}`);
    },
  });
}

aesCases.push({
  name: 'RFC 4493 examples (one-shot and streaming)',
  async run(read) {
    const vectors = JSON.parse(await read('rfc/rfc4493_aes_cmac.json')) as Record<string, string>[];
    // RFC 4493 section 4: examples 1 to 4 (lengths 0, 16, 40, 64).
    equal(vectors.filter((x) => x.mac !== undefined).length, 4, 'the four examples');
    for (const v of vectors.filter((x) => x.mac !== undefined)) {
      const key = unhex(v.key!), msg = unhex(v.msg!);
      equalHex(cmac(key, msg), v.mac!, v.name!);
      for (const step of [1, 5, 16, 17]) {
        const m = createCmac(aesKey(key));
        for (let i = 0; i < msg.length; i += step) m.update(msg.subarray(i, i + step));
        equalHex(m.digest(), v.mac!, `${v.name} in pieces of ${step}`);
      }
    }
  },
});

// ---- streaming equivalence ----

function pieces(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0, i = 0;
  while (off < data.length) {
    const n = Math.min(sizes[i++ % sizes.length]!, data.length - off);
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

const CHUNKINGS = [[1], [15], [16], [17], [3, 40, 1], [70000]];

function streamMatches(name: string, a: Aead, pt: Uint8Array): void {
  const whole = a.encrypt(pt);
  for (const sizes of CHUNKINGS) {
    const es = a.encryptStream();
    const got = cat(...pieces(pt, sizes).map((p) => es.update(p)), es.final());
    equalBytes(got, whole, `${name} encrypt stream, pieces ${sizes}`);
    const ds = a.decryptStream();
    for (const p of pieces(whole, sizes)) ds.update(p);
    equalBytes(ds.final(), pt, `${name} decrypt stream, pieces ${sizes}`);
  }
}

aesCases.push({
  name: 'streaming = one-shot for any chunking (GCM, CCM, CBC, CMAC), across the I/O window',
  run() {
    const rand = prng(77);
    const key = rand(16), key32 = rand(32);
    for (const len of [0, 1, 16, 33, 1000, 70001]) {
      const pt = rand(len), aad = rand(len % 50);
      streamMatches(`GCM len ${len}`, gcm(key, rand(12), aad), pt);
      streamMatches(`GCM 256 nonce 60 len ${len}`, gcm(aesKey(key32), rand(60), aad, { tagLength: 12 }), pt);
      streamMatches(`CCM len ${len}`, ccm(key, rand(12), aad, { messageLength: len, tagLength: 8 }), pt);
      streamMatches(`CCM collecting len ${len}`, ccm(key32, rand(7), aad), pt);
      for (const padding of ['pkcs5', 'iso9797-m2', 'iso9797-m1', 'none'] as const) {
        const p = padding === 'none' || padding === 'iso9797-m1' ? pt.subarray(0, len & ~15) : pt;
        const c = cbc(key, rand(16), { padding });
        const whole = c.encrypt(p);
        for (const sizes of CHUNKINGS) {
          const es = c.encryptStream();
          equalBytes(cat(...pieces(p, sizes).map((x) => es.update(x)), es.final()), whole, `CBC ${padding} len ${len} pieces ${sizes}`);
          const ds = c.decryptStream();
          equalBytes(cat(...pieces(whole, sizes).map((x) => ds.update(x)), ds.final()), p.length || padding !== 'iso9797-m1' ? p : new Uint8Array(16), `CBC ${padding} decrypt len ${len} pieces ${sizes}`);
        }
      }
      const mac = cmac(key, pt);
      for (const sizes of CHUNKINGS) {
        const m = createCmac(key);
        for (const x of pieces(pt, sizes)) m.update(x);
        equalBytes(m.digest(), mac, `CMAC len ${len} pieces ${sizes}`);
      }
    }
  },
});

aesCases.push({
  name: 'streaming into the caller\'s array: in place when it has room, a new array (and the caller\'s untouched) when not',
  run() {
    const rand = prng(78);
    const key = rand(16);
    const inPlace = (got: Uint8Array, into: Uint8Array) => got.buffer === into.buffer && got.byteOffset === into.byteOffset;
    for (const len of [1, 16, 33, 1000, 40000, 70001]) {
      const pt = rand(len), nonce = rand(12), iv = rand(16);
      const gcms = [['GCM', [len]], ['GCM pieces', [7, 100]]] as const;
      const cbcs = [['CBC pkcs5', [len]], ['CBC pkcs5 pieces', [17, 5]]] as const;
      for (const [name, sizes, c, slack] of [
        ...gcms.map(([n, z]) => [n, z, gcm(key, nonce), 0] as const),
        ...cbcs.map(([n, z]) => [n, z, cbc(key, iv), 16] as const),
      ]) {
        const whole = c.encrypt(pt);
        const es = c.encryptStream();
        const outs: Uint8Array[] = [];
        for (const [i, p] of pieces(pt, [...sizes]).entries()) {
          // Every other piece gets an array one byte short of what update() may need: it must not be used.
          const short = i % 2 === 1;
          const into = new Uint8Array(p.length + slack - (short ? 1 : 0)).fill(0xa5);
          const got = es.update(p, into);
          ok(inPlace(got, into) === !short || got.length === 0, `${name} len ${len}: piece ${i} ${short ? 'not ' : ''}written in place`);
          if (short) ok(into.every((b) => b === 0xa5), `${name}: a short array is left alone`);
          outs.push(got.slice());
        }
        equalBytes(cat(...outs, es.final()), whole, `${name} len ${len}: encryption into arrays`);
        if (slack === 16) {
          const ds = c.decryptStream();
          const into = new Uint8Array(whole.length + 16);
          const got = ds.update(whole, into);
          ok(inPlace(got, into) || (got.length === 0 && whole.length === 16), `${name} len ${len}: CBC decryption in place`);
          equalBytes(cat(got.slice(), ds.final()), pt, `${name} len ${len}: CBC decryption into an array`);
        } else {
          const ds = c.decryptStream();
          ds.update(whole);
          const into = new Uint8Array(len + 5);
          const got = ds.final(into);
          ok(inPlace(got, into), `${name} len ${len}: AEAD decryption final() in place`);
          equalBytes(got, pt, `${name} len ${len}: AEAD decryption into an array`);
          const bad = whole.slice();
          bad[0]! ^= 1;
          const bs = c.decryptStream();
          bs.update(bad);
          const untouched = new Uint8Array(len).fill(0x5a);
          let threw = false;
          try {
            bs.final(untouched);
          } catch (e) {
            // The message says what may be wrong: a bare status text would not.
            threw = e instanceof AuthenticationError && e.message.endsWith('authentication failed (wrong key, nonce, associated data, ciphertext or tag)');
          }
          ok(threw && untouched.every((b) => b === 0x5a), `${name} len ${len}: a wrong tag is an AuthenticationError saying what may be wrong, and writes nothing into the array`);
        }
      }
    }
  },
});

// ---- errors ----

aesCases.push({
  name: 'AEAD rejects flipped bits in ciphertext, tag and AAD, and truncated input, releasing nothing',
  run() {
    const rand = prng(5);
    const key = rand(16), nonce = rand(12), aad = rand(20), pt = rand(40);
    for (const [name, make] of [
      ['GCM', (a: Uint8Array) => gcm(key, nonce, a)],
      ['CCM', (a: Uint8Array) => ccm(key, nonce, a)],
      ['CCM_8', (a: Uint8Array) => ccm(key, nonce, a, { tagLength: 8 })],
    ] as const) {
      const good = make(aad).encrypt(pt);
      for (let bit = 0; bit < good.length * 8; bit += 7) {
        const bad = good.slice();
        bad[bit >> 3]! ^= 1 << (bit & 7);
        const e = throws(() => make(aad).decrypt(bad), AuthenticationError, `${name} flipped bit ${bit}`);
        ok(!e.message.includes(hex(key)) && !e.message.includes(hex(pt)), 'error message carries no key or data');
        const s = make(aad).decryptStream();
        s.update(bad);
        throws(() => s.final(), AuthenticationError, `${name} stream flipped bit ${bit}`);
      }
      for (let bit = 0; bit < aad.length * 8; bit += 11) {
        const badAad = aad.slice();
        badAad[bit >> 3]! ^= 1 << (bit & 7);
        throws(() => make(badAad).decrypt(good), AuthenticationError, `${name} AAD bit ${bit}`);
      }
      throws(() => make(aad).decrypt(good.subarray(0, good.length - 1)), AuthenticationError, `${name} truncated by one byte`);
      throws(() => make(aad).decrypt(good.subarray(0, 3)), LengthError, `${name} shorter than the tag`, /: input of 3 bytes is shorter than the \d+-byte tag$/);
      // A stream ended before a whole tag arrived, nothing at all included, is refused and stays usable.
      const early = make(aad).decryptStream();
      throws(() => early.final(), LengthError, `${name} stream ended before any input`, /: input of 0 bytes is shorter than the \d+-byte tag$/);
      ok(hex(early.update(good).final()) === hex(pt), `${name} stream after its early final()`);
      throws(() => make(new Uint8Array(0)).decrypt(good), AuthenticationError, `${name} AAD dropped`);
    }
  },
});

aesCases.push({
  name: 'every bad length and option is a typed error naming the parameter',
  run() {
    const k = new Uint8Array(16), n12 = new Uint8Array(12), iv = new Uint8Array(16);
    for (const len of [0, 8, 15, 17, 24, 31, 33, 64]) {
      throws(() => gcm(new Uint8Array(len), n12), LengthError, `GCM key ${len}`, /key must be 16 or 32 bytes/);
      throws(() => ccm(new Uint8Array(len), n12), LengthError, `CCM key ${len}`, /key/);
      throws(() => cbc(new Uint8Array(len), iv), LengthError, `CBC key ${len}`, /key/);
      throws(() => cmac(new Uint8Array(len), iv), LengthError, `CMAC key ${len}`, /key/);
      throws(() => aesKey(new Uint8Array(len)), LengthError, `aesKey ${len}`, /key/);
    }
    throws(() => gcm(k, new Uint8Array(0)), LengthError, 'GCM empty nonce', /nonce/);
    for (const t of [0, 1, 3, 5, 9, 10, 11, 17, 32]) throws(() => gcm(k, n12, undefined, { tagLength: t }), LengthError, `GCM tag ${t}`, /tag length/);
    for (const len of [0, 6, 14, 16]) throws(() => ccm(k, new Uint8Array(len)), LengthError, `CCM nonce ${len}`, /nonce must be 7 to 13/);
    for (const t of [0, 2, 3, 5, 15, 17, 18]) throws(() => ccm(k, n12, undefined, { tagLength: t }), LengthError, `CCM tag ${t}`, /tag length/);
    throws(() => ccm(k, new Uint8Array(13)).encrypt(new Uint8Array(65536)), LengthError, 'CCM payload too long for L = 2', /2\^16/);
    // A messageLength the nonce has no room for is known at once: refused by ccm(), not at the object's first use.
    throws(() => ccm(k, new Uint8Array(13), undefined, { messageLength: 65536 }), LengthError, 'CCM messageLength 2^16 for L = 2', /13-byte nonce leaves room for messages below 2\^16 bytes, got 65536$/);
    equal(ccm(k, new Uint8Array(13), undefined, { messageLength: 65535 }).tagLength, 16, 'CCM messageLength 2^16 - 1 for L = 2');
    // A collecting stream refuses the update that passes the limit, as it arrives, and keeps what it had.
    const collecting = ccm(k, new Uint8Array(13)).encryptStream();
    collecting.update(new Uint8Array(65530));
    throws(() => collecting.update(new Uint8Array(6)), LengthError, 'CCM collecting stream past 2^16 - 1', /below 2\^16 bytes, got 65536$/);
    collecting.update(new Uint8Array(5));
    equal(hex(collecting.final()), hex(ccm(k, new Uint8Array(13)).encrypt(new Uint8Array(65535))), 'CCM collecting stream after a refused update');
    const opening = ccm(k, new Uint8Array(13)).decryptStream();
    opening.update(new Uint8Array(65535 + 16));
    throws(() => opening.update(new Uint8Array(1)), LengthError, 'CCM collecting decryption past 2^16 - 1 and the tag', /below 2\^16 bytes, got 65536$/);
    for (const len of [0, 15, 17, 32]) throws(() => cbc(k, new Uint8Array(len)), LengthError, `CBC IV ${len}`, /IV must be 16/);
    throws(() => cbc(k, iv, { padding: 'pkcs7' as CbcPadding }), UnknownAlgorithmError, 'unknown padding', /padding/);
    throws(() => cbc(k, iv, { padding: 'none' }).encrypt(new Uint8Array(17)), LengthError, 'CBC none, 17 bytes', /multiple of 16/);
    throws(() => cbc(k, iv, { padding: 'none' }).decrypt(new Uint8Array(15)), LengthError, 'CBC none decrypt 15', /multiple of 16/);
    for (const padding of ['pkcs5', 'iso9797-m1', 'iso9797-m2'] as const) {
      throws(() => cbc(k, iv, { padding }).decrypt(new Uint8Array(0)), LengthError, `CBC ${padding} decrypt empty`, /non-zero multiple of 16/);
      throws(() => cbc(k, iv, { padding }).decryptStream().final(), LengthError, `CBC ${padding} stream decrypt empty`, /non-zero multiple of 16/);
    }
    equal(cbc(k, iv, { padding: 'none' }).decrypt(new Uint8Array(0)).length, 0, 'CBC none decrypts empty to empty');
    // A ciphertext length is refused before the key is reached: empty as 5 bytes, under a key destroyed since.
    const gone = aesKey(k), underGone = cbc(gone, iv);
    gone.destroy();
    for (const len of [0, 5]) throws(() => underGone.decrypt(new Uint8Array(len)), LengthError, `CBC decrypt ${len} under a destroyed key`, /non-zero multiple of 16/);
    throws(() => cbc(k, iv, { padding: 'iso9797-m2' }).decrypt(new Uint8Array(33)), LengthError, 'CBC m2 decrypt 33');
    const es = cbc(k, iv, { padding: 'none' }).encryptStream();
    es.update(new Uint8Array(20));
    throws(() => es.final(), LengthError, 'CBC none stream, 20 bytes', /multiple of 16/);
    throws(() => cbcMac(k, new Uint8Array(0)), LengthError, 'CBC-MAC empty', /non-empty multiple of 16/);
    throws(() => cbcMac(k, new Uint8Array(20)), LengthError, 'CBC-MAC 20 bytes');
    const m = createCbcMac(k).update(new Uint8Array(20));
    throws(() => m.digest(), LengthError, 'CBC-MAC streaming 20 bytes');
    throws(() => gcm('key' as unknown as Uint8Array, n12), InvalidInputError, 'string key', /key must be a Uint8Array/);
    throws(() => gcm(k, n12).encrypt([1, 2] as unknown as Uint8Array), InvalidInputError, 'array data');
    // The one-shot calls hold to it too: a message of another length is refused, not encrypted under a B0 that names it.
    const declared = ccm(k, n12, undefined, { messageLength: 4 });
    throws(() => declared.encrypt(new Uint8Array(5)), LengthError, 'CCM one-shot beyond messageLength', /plaintext of 5 bytes, not the declared messageLength of 4/);
    throws(() => declared.encrypt(new Uint8Array(3)), LengthError, 'CCM one-shot short of messageLength', /messageLength/);
    throws(() => declared.decrypt(new Uint8Array(21)), LengthError, 'CCM one-shot decryption beyond messageLength', /ciphertext of 21 bytes, not the declared messageLength of 4 plus the 16-byte tag/);
    equal(declared.decrypt(declared.encrypt(new Uint8Array(4))).length, 4, 'the declared length itself');
    equalBytes(declared.encrypt(Uint8Array.of(1, 2, 3, 4)), ccm(k, n12).encrypt(Uint8Array.of(1, 2, 3, 4)), 'the same result as without the declaration');
    const s = ccm(k, n12, undefined, { messageLength: 4 }).encryptStream();
    throws(() => s.update(new Uint8Array(5)), LengthError, 'CCM stream beyond messageLength', /messageLength/);
    const s2 = ccm(k, n12, undefined, { messageLength: 4 }).encryptStream();
    s2.update(new Uint8Array(3));
    throws(() => s2.final(), LengthError, 'CCM stream short of messageLength');
  },
});

aesCases.push({
  name: 'corrupted padding is a PaddingError; finished and destroyed objects are StateErrors',
  run() {
    const rand = prng(9);
    const key = rand(32), iv = rand(16);
    for (const padding of ['pkcs5', 'iso9797-m2'] as const) {
      const c = cbc(key, iv, { padding });
      // Decrypting random blocks yields malformed padding in almost every case;
      // the last block is forged so that its plaintext ends badly for certain.
      const raw = cbc(key, iv, { padding: 'none' });
      for (const tailText of ['00000000000000000000000000000000', '0102030405060708090a0b0c0d0e0f11', '11111111111111111111111111111103', '000000000000000000000000000080ff', '00000000000000000000000000000011']) {
        const forged = raw.encrypt(cat(rand(16), unhex(tailText)));
        const e = throws(() => c.decrypt(forged), PaddingError, `${padding} padding ${tailText}`, /padding/);
        ok(!e.message.includes(hex(key)), 'no key in message');
        const ds = c.decryptStream();
        ds.update(forged);
        throws(() => ds.final(), PaddingError, `${padding} stream padding ${tailText}`);
      }
    }
    const m = createCmac(rand(16));
    m.digest();
    throws(() => m.update(new Uint8Array(1)), StateError, 'CMAC after digest');
    const k = aesKey(rand(16));
    k.destroy();
    throws(() => gcm(k, rand(12)), StateError, 'destroyed AesKey');
    const es = gcm(rand(16), rand(12)).encryptStream();
    es.final();
    throws(() => es.update(new Uint8Array(1)), StateError, 'GCM stream after final');
    // CCM without messageLength collects its input until final(): ended, it refuses more and a second final() alike.
    const ccmStreams = ccm(rand(16), rand(12));
    const ce = ccmStreams.encryptStream();
    ce.update(rand(5));
    const sealed = ce.final();
    throws(() => ce.update(new Uint8Array(1)), StateError, 'collecting CCM stream update after final', /^AES-CCM stream already finished or destroyed$/);
    throws(() => ce.final(), StateError, 'collecting CCM stream final after final', /^AES-CCM stream already finished or destroyed$/);
    const cd = ccmStreams.decryptStream();
    cd.update(sealed);
    cd.destroy();
    throws(() => cd.update(sealed), StateError, 'collecting CCM stream update after destroy', /^AES-CCM stream already finished or destroyed$/);
    throws(() => cd.final(), StateError, 'collecting CCM stream final after destroy', /^AES-CCM stream already finished or destroyed$/);
  },
});

aesCases.push({
  name: 'streams own their key; gcm/ccm/cbc objects read theirs at each call; rejected calls leave streams usable',
  run() {
    const rand = prng(31);
    const pt = rand(100), nonce = rand(12), iv = rand(16);
    for (const [name, make] of [
      ['GCM', (k: Uint8Array | ReturnType<typeof aesKey>) => gcm(k, nonce)],
      ['CCM', (k: Uint8Array | ReturnType<typeof aesKey>) => ccm(k, nonce)],
      ['CCM with messageLength', (k: Uint8Array | ReturnType<typeof aesKey>) => ccm(k, nonce, undefined, { messageLength: pt.length })],
      ['CBC', (k: Uint8Array | ReturnType<typeof aesKey>) => cbc(k, iv)],
    ] as const) {
      const bytes = rand(16);
      const whole = make(bytes).encrypt(pt);
      // The caller wipes its key array, or destroys its AesKey, once the streams are open.
      const wiped = bytes.slice(), key = aesKey(bytes);
      const streams = [make(wiped), make(key)].map((c) => ({ es: c.encryptStream(), ds: c.decryptStream() }));
      wiped.fill(0);
      key.destroy();
      for (const [i, { es, ds }] of streams.entries()) {
        equalBytes(cat(es.update(pt.subarray(0, 37)), es.update(pt.subarray(37)), es.final()), whole, `${name} stream ${i}: encryption after the key went away`);
        const out = ds.update(whole.subarray(0, 50));
        const rest = ds.update(whole.subarray(50));
        equalBytes(cat(...[out, rest, ds.final()].filter((x) => x instanceof Uint8Array)), pt, `${name} stream ${i}: decryption after the key went away`);
      }
      // The object itself reads the key array when it runs: a wiped array is the wiped key, a detached one refused.
      const held = bytes.slice(), obj = make(held);
      held.fill(0);
      equalBytes(obj.encrypt(pt), make(new Uint8Array(16)).encrypt(pt), `${name}: the object reads its key at each call`);
      structuredClone(held.buffer, { transfer: [held.buffer] });
      throws(() => obj.encrypt(pt), InvalidInputError, `${name}: detached key`, /key is a view of a detached ArrayBuffer/);
    }
  },
});

aesCases.push({
  name: 'CCM collecting decryption writes into the caller\'s array; a wrong into is an InvalidInputError that consumes nothing',
  run() {
    const rand = prng(32);
    const key = rand(16), nonce = rand(12), pt = rand(70);
    const c = ccm(key, nonce);
    const whole = c.encrypt(pt);
    const ds = c.decryptStream();
    ds.update(whole);
    const into = new Uint8Array(80);
    const got = ds.final(into);
    ok(got.buffer === into.buffer && got.byteOffset === 0, 'CCM collecting final(into) writes into the array');
    equalBytes(got, pt, 'CCM collecting final(into) result');
    const exact = new Uint8Array(pt.length);
    const gotExact = c.decryptStream().update(whole).final(exact);
    ok(gotExact.buffer === exact.buffer && gotExact.length === pt.length, 'CCM collecting final(into) writes into an array of exactly the plaintext\'s length');
    equalBytes(exact, pt, 'CCM collecting final(into) of exactly the plaintext\'s length');
    for (const [name, a] of [['GCM', gcm(key, nonce)], ['CCM with messageLength', ccm(key, nonce, undefined, { messageLength: pt.length })], ['CCM', c]] as const) {
      const es = a.encryptStream();
      throws(() => es.update(pt.subarray(0, 20), [] as unknown as Uint8Array), InvalidInputError, `${name} into as an Array`, /into must be a Uint8Array, got array/);
      throws(() => es.update(pt.subarray(0, 20), new Uint16Array(40) as unknown as Uint8Array), InvalidInputError, `${name} into as a Uint16Array`, /Uint16Array/);
      equalBytes(cat(es.update(pt.subarray(0, 20)), es.update(pt.subarray(20)), es.final()), a.encrypt(pt), `${name}: the stream goes on after rejected calls`);
      const d = a.decryptStream();
      d.update(a.encrypt(pt));
      throws(() => d.final([] as unknown as Uint8Array), InvalidInputError, `${name} final into as an Array`);
      equalBytes(d.final(), pt, `${name}: decryption goes on after a rejected final()`);
    }
    const cs = cbc(key, rand(16)).encryptStream();
    throws(() => cs.update(pt, {} as unknown as Uint8Array), InvalidInputError, 'CBC into as an object');
  },
});

aesCases.push({
  name: 'options: null is no options; a value of the wrong kind is named by its type, never shown',
  run() {
    const rand = prng(33);
    const key = rand(16), nonce = rand(12), iv = rand(16), pt = rand(33);
    const none = null as unknown as undefined;
    equalBytes(gcm(key, nonce, undefined, none).encrypt(pt), gcm(key, nonce).encrypt(pt), 'GCM null options');
    equalBytes(ccm(key, nonce, undefined, none).encrypt(pt), ccm(key, nonce).encrypt(pt), 'CCM null options');
    equalBytes(cbc(key, iv, none).encrypt(pt), cbc(key, iv).encrypt(pt), 'CBC null options');
    const secret = unhex('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf');
    const asAny = secret as unknown as number & string & CbcPadding;
    for (const [name, fn] of [
      ['GCM tagLength', () => gcm(key, nonce, undefined, { tagLength: asAny })],
      ['CCM tagLength', () => ccm(key, nonce, undefined, { tagLength: asAny })],
      ['CCM messageLength', () => ccm(key, nonce, undefined, { messageLength: asAny })],
      ['CBC padding', () => cbc(key, iv, { padding: asAny })],
    ] as const) {
      let message = '';
      try {
        fn();
      } catch (e) {
        message = (e as Error).message;
      }
      ok(/a value of type Uint8Array/.test(message) && !message.includes('160') && !message.includes('a0a1'), `${name}: ${message}`);
    }
  },
});

aesCases.push({
  name: 'CCM decryption stream with messageLength: too much ciphertext is a LengthError before any state changes',
  run() {
    const rand = prng(34);
    const key = rand(16), nonce = rand(12), pt = rand(50);
    const c = ccm(key, nonce, undefined, { messageLength: pt.length });
    const whole = c.encrypt(pt);
    const ds = c.decryptStream();
    ds.update(whole.subarray(0, 30));
    throws(() => ds.update(cat(whole.subarray(30), rand(5))), LengthError, 'CCM decryption beyond messageLength plus tag', /messageLength/);
    ds.update(whole.subarray(30));
    equalBytes(ds.final(), pt, 'the stream still decrypts after the rejected chunk');
  },
});

aesCases.push({
  name: 'streaming in place (into = the input chunk itself), across the I/O window',
  run() {
    const rand = prng(35);
    const key = rand(16), nonce = rand(12), iv = rand(16);
    for (const len of [32, 32768, 70000]) {
      const pt = rand(len);
      for (const [name, c, slack] of [['GCM', gcm(key, nonce), 0], ['CBC', cbc(key, iv, { padding: 'none' }), 16]] as const) {
        const buf = cat(pt, new Uint8Array(slack));
        const es = c.encryptStream();
        const cut = len - 16;
        const a = es.update(buf.subarray(0, cut), buf.subarray(0, cut + slack)).slice();
        const b = es.update(buf.subarray(cut, len), buf.subarray(cut)).slice();
        const whole = c.encrypt(pt);
        equalBytes(cat(a, b, es.final()), whole, `${name} ${len}: encryption in place`);
        if (slack) {
          const ct = cat(whole, new Uint8Array(16));
          const ds = c.decryptStream();
          const x = ds.update(ct.subarray(0, 16), ct.subarray(0, 32)).slice();
          const y = ds.update(ct.subarray(16, len), ct.subarray(16)).slice();
          equalBytes(cat(x, y, ds.final()), pt, `${name} ${len}: decryption in place`);
        }
      }
    }
  },
});
