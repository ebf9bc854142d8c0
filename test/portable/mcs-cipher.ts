// <cipher> (clause 7.5.1) for every algorithm of table 9.6-1, and the AES
// MACs of table 9.9-1: results equal the core's one-shot functions for any
// chunking of the UPDATEs, decryption round-trips, and every failure code.
import { cbc, cbcMac, ccm, cmac, gcm, hmac, sha256, type CbcPadding } from '../../src/index.ts';
import { equal, equalBytes, equalHex, ok as assert, prng, type PortableCase } from './harness.ts';
import { b64, body, createExportable, engineWith, fails, ok, Session, softwareSe, unb64, type BackendFactory } from './mcs-kit.ts';

interface Alg { value: number; mode: 'gcm' | 'ccm' | 'cbc'; key: number; tag?: number; padding?: CbcPadding }
export const CIPHER_ALGS: Alg[] = [
  { value: 1001, mode: 'gcm', key: 16, tag: 16 }, { value: 1002, mode: 'gcm', key: 32, tag: 16 },
  { value: 1003, mode: 'ccm', key: 16, tag: 16 }, { value: 1004, mode: 'ccm', key: 32, tag: 16 },
  { value: 1018, mode: 'ccm', key: 16, tag: 8 }, { value: 1019, mode: 'ccm', key: 32, tag: 8 },
  { value: 13, mode: 'cbc', key: 16, padding: 'none' }, { value: 22, mode: 'cbc', key: 32, padding: 'iso9797-m1' },
  { value: 23, mode: 'cbc', key: 16, padding: 'iso9797-m2' }, { value: 24, mode: 'cbc', key: 32, padding: 'pkcs5' },
];

/** The core's one-shot result for the same key and parameters (the oracle of every case here). */
export function coreCipher(a: Alg, key: Uint8Array, p: { nonce: Uint8Array; iv: Uint8Array; aad: Uint8Array }) {
  if (a.mode === 'gcm') return gcm(key, p.nonce, p.aad, { tagLength: a.tag! });
  if (a.mode === 'ccm') return ccm(key, p.nonce, p.aad, { tagLength: a.tag! });
  return cbc(key, p.iv, { padding: a.padding! });
}

/** Sends `data` as UPDATE chunks of random sizes (1 byte to 40 KiB). */
async function upload(s: Session, to: string, data: Uint8Array, seed: number, binary: boolean): Promise<void> {
  const rnd = prng(seed);
  let off = 0;
  while (off < data.length) {
    const n = Math.min(data.length - off, 1 + ((rnd(2)[0]! << 8 | rnd(1)[0]!) % (seed % 3 === 0 ? 40960 : 3000)));
    const chunk = data.subarray(off, off + n);
    ok(await s.send(3, to, { 'senv:Cph': { msg: binary ? chunk : b64(chunk) } }), 2004, 'chunk');
    off += n;
  }
}

async function cipherResource(s: Session, a: Alg, rn: string, key: Uint8Array, p: { nonce: Uint8Array; iv: Uint8Array; aad: Uint8Array }, mbs = 1 << 20) {
  ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn, Calg: a.value, mbs, kDt: b64(key) } }), 2001, 'create cipher');
  const param = a.mode === 'cbc' ? { iV: b64(p.iv) } : { nc: b64(p.nonce), aD: b64(p.aad) };
  ok(await s.create(s.path('reg', rn), 20001, { 'senv:algP': { rn: 'p', ...param } }), 2001, 'create algP');
}

export function mcsCipherCases(backend: BackendFactory = softwareSe): PortableCase[] {
  return [
    ...CIPHER_ALGS.map((a, i): PortableCase => ({
      name: `<cipher> Calg ${a.value}: chunked UPDATEs then encrypt/decrypt equal the core one-shot`,
      async run() {
        const s = new Session(await engineWith(backend), 'CAE1');
        await s.register();
        const rnd = prng(1000 + a.value);
        const key = rnd(a.key);
        const p = { nonce: rnd(12), iv: rnd(16), aad: rnd(i * 7) };
        await cipherResource(s, a, 'c', key, p);
        const oracle = coreCipher(a, key, p);
        for (const [j, size] of [0, 16, 33, 4096, 100000].entries()) {
          const plain = rnd(a.padding === 'none' ? size - (size % 16) : size);
          const binary = j % 2 === 1;
          ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { cbs: 0 } }), 2004, 'reset');
          await upload(s, s.path('reg', 'c'), plain, j + a.value, binary);
          const enc = body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph');
          const ct = unb64(enc.cD);
          equalBytes(ct, oracle.encrypt(plain), `encrypt ${plain.length} bytes`);
          // The same data again, now decrypted: the speculative stream was for encryption, decryption replays.
          await upload(s, s.path('reg', 'c'), ct, j, false);
          // The next message streams through the buffer the last result came from: the result must not change.
          equalBytes(unb64(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').cD), ct, 'calculatedData kept while the next message streams');
          const dec = unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'Dec')), 2000, 'decrypt'), 'senv:Cph').cD);
          equalBytes(dec, a.padding === 'iso9797-m1' ? oracle.decrypt(ct) : plain, 'round trip');
          // Decrypt a second message of the same size: this time the stream was opened for decryption.
          await upload(s, s.path('reg', 'c'), ct, j + 1, true);
          equalBytes(unb64(body(await s.retrieve(s.path('reg', 'c', 'decrypt')), 'senv:Cph').cD), dec, 'streamed decryption');
        }
      },
    })),
    ...CIPHER_ALGS.filter((a) => a.mode !== 'cbc').map((a): PortableCase => ({
      name: `<cipher> Calg ${a.value}: a wrong tag, AAD or nonce gives 4102 and no calculatedData`,
      async run() {
        const s = new Session(await engineWith(backend), 'CAE1');
        await s.register();
        const rnd = prng(a.value);
        const key = rnd(a.key);
        const p = { nonce: rnd(12), iv: rnd(16), aad: rnd(20) };
        await cipherResource(s, a, 'c', key, p);
        // A result of an earlier message must not survive the failure of the next one.
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(40)) } }), 2004, 'a message');
        equal(unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD).length, 40 + a.tag!, 'its calculatedData');
        const ct = coreCipher(a, key, p).encrypt(rnd(70000));
        ct[ct.length - 1]! ^= 1;
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(ct) } }), 2004, 'tampered');
        fails(await s.retrieve(s.path('reg', 'c', 'decrypt')), 4102, 'wrong tag', /authentication/);
        const rep = body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph');
        equal(rep.cD, undefined, 'no calculatedData after a failed decryption');
        ok(await s.update(s.path('reg', 'c', 'p'), { 'senv:algP': { aD: b64(rnd(3)) } }), 2004, 'other AAD');
        ct[ct.length - 1]! ^= 1;
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(ct) } }), 2004, 'genuine ciphertext');
        fails(await s.retrieve(s.path('reg', 'c', 'decrypt')), 4102, 'wrong AAD');
        const written = body(ok(await s.update(s.path('reg', 'c', 'p'), { 'senv:algP': { aD: b64(p.aad), nc: b64(rnd(12)), Clab: 1 } }), 2004, 'the right AAD, another nonce of the right length'), 'senv:algP');
        // docs/mcs.md "Responses": an UPDATE echoes what it wrote but byte values.
        equal(JSON.stringify(Object.keys(written).sort()), JSON.stringify(['Clab', 'lt', 'ri']), 'UPDATE echoes Clab, not aD or nc');
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(ct) } }), 2004, 'genuine ciphertext again');
        fails(await s.retrieve(s.path('reg', 'c', 'decrypt')), 4102, 'wrong nonce');
        equal(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').cD, undefined, 'no calculatedData after a wrong nonce');
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(ct.subarray(0, a.tag! - 1)) } }), 2004, 'short');
        fails(await s.retrieve(s.path('reg', 'c', 'decrypt')), 4102, 'shorter than the tag');
        fails(await s.update(s.path('reg', 'c', 'p'), { 'senv:algP': { nc: b64(rnd(13)) } }), 4000, 'nonce length', /nc.*12 bytes/);
        fails(await s.update(s.path('reg', 'c', 'p'), { 'senv:algP': { iV: b64(rnd(16)) } }), 4000, 'iV for AEAD', /iV/);
      },
    })),
    {
      name: '<cipher> failures: keys, parameters, padding, maxByteSize, write-once, generateKey',
      async run() {
        const s = new Session(await engineWith(backend, { maxDataSize: 1 << 22 }), 'CAE1');
        await s.register();
        const rnd = prng(77);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 1001 } }), 4000, 'mbs mandatory', /mbs.*mandatory/);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { mbs: 10 } }), 4000, 'Calg mandatory', /Calg/);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 1005, mbs: 10 } }), 4000, 'unknown algorithm', /table 9\.6-1/);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 1001, mbs: 10, kDt: b64(rnd(32)) } }), 4000, 'AES-256 key for 1001', /kDt.*16 bytes/);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 13, mbs: 10, kDt: b64(rnd(24)) } }), 4000, 'AES-192', /kDt/);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 13, mbs: (1 << 22) + 1 } }), 5207, 'mbs beyond the SE limit');
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 13, mbs: 10, cD: 'AAAA' } }), 4000, 'cD read-only', /read-only/);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 13, mbs: 10, msg: b64(rnd(11)) } }), 5207, 'msg beyond mbs at CREATE');
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 13, mbs: 10, cbs: 3 } }), 4000, 'cbs other than 0 at CREATE', /cbs.*only be set to 0/);
        fails(await s.create(s.seId, 20002, { 'senv:Cph': { Calg: 13, mbs: 10, cbs: 0, msg: b64(rnd(5)) } }), 4000, 'cbs 0 with data at CREATE', /contradict/);
        const exportable = await createExportable(s, 20002, 'senv:Cph', { rn: 'c', Calg: 13, mbs: 64 }, 'no key');
        fails(await s.retrieve(s.path('reg', 'c', 'encrypt')), 4005, 'no key yet', /keyData/);
        const kDt = body(ok(await s.retrieve(s.path('reg', 'c', 'generateKey')), 2000, 'gnK'), 'senv:Cph').kDt;
        // A card keeps the generated key: the case goes on with an imported one where it needs the bytes.
        const key = exportable ? unb64(kDt) : rnd(32);
        if (exportable) equal(key.length, 32, 'CBC keys are generated as AES-256');
        else equal(kDt, undefined, 'a device key is never shown');
        fails(await s.retrieve(s.path('reg', 'c', 'gnK')), 4005, 'key is write-once');
        fails(await s.retrieve(s.path('reg', 'c', 'encrypt')), 4005, 'no IV', /algorithmSpecificParameter/);
        fails(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { iV: b64(rnd(15)) } }), 4000, 'IV length', /iV.*16/);
        fails(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { iV: b64(rnd(16)), acpi: [] } }), 4000, 'algP has no acpi', /acpi/);
        const iv = rnd(16);
        ok(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { rn: 'p', iV: b64(iv), Clab: 1 } }), 2001, 'algP');
        fails(await s.create(s.path('reg', 'c'), 20001, { 'senv:algP': { iV: b64(iv) } }), 4105, 'second algP');
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(40)) } }), 2004, 'data');
        fails(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(25)) } }), 5207, 'beyond maxByteSize');
        equal(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').cbs, 40, 'rejected chunk not appended');
        fails(await s.retrieve(s.path('reg', 'c', 'encrypt')), 4102, 'NOPAD needs whole blocks', /multiple of 16/);
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { cbs: 0 } }), 2004, 'discard');
        equal(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').msg, undefined, 'no data held: no msg (not an empty one)');
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(16)) } }), 2004, 'data again');
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: null } }), 2004, 'msg: null discards it');
        const discarded = body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph');
        equal(discarded.msg, undefined, 'msg: null removes msg (TS-0004)');
        equal(discarded.cbs, 0, 'and cbs is 0');
        // cbs 0 and msg null (or an empty chunk) ask for the same discard; with data they contradict.
        for (const msg of [null, '']) {
          ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(rnd(16)) } }), 2004, 'data to discard');
          ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { cbs: 0, msg } }), 2004, `cbs 0 with msg ${JSON.stringify(msg)}`);
          equal(body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph').cbs, 0, `discarded by cbs 0 with msg ${JSON.stringify(msg)}`);
        }
        fails(await s.update(s.path('reg', 'c'), { 'senv:Cph': { cbs: 0, msg: b64(rnd(16)) } }), 4000, 'cbs 0 with data', /contradict/);
        const plain = rnd(48);
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(plain) } }), 2004, 'whole blocks');
        const ct = unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'Enc')), 2000, 'encrypt'), 'senv:Cph').cD);
        if (exportable) equalBytes(ct, cbc(key, iv, { padding: 'none' }).encrypt(plain), 'generated key works');
        else {
          ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(ct) } }), 2004, 'ciphertext');
          equalBytes(unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'Dec')), 2000, 'decrypt'), 'senv:Cph').cD), plain, 'generated key round trip');
        }
        fails(await s.update(s.path('reg', 'c'), { 'senv:Cph': { cbs: 5 } }), 4000, 'cbs other than 0', /cbs/);
        fails(await s.update(s.path('reg', 'c'), { 'senv:Cph': { mbs: 100 } }), 4000, 'mbs write-once', /write-once/);
        fails(await s.update(s.path('reg', 'c'), { 'senv:Cph': { Calg: 24 } }), 4000, 'Calg write-once', /write-once/);
        // Bad PKCS#7 padding on decryption.
        ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'p5', Calg: 24, mbs: 64, kDt: b64(key) } }), 2001, 'pkcs5');
        ok(await s.create(s.path('reg', 'p5'), 20001, { 'senv:algP': { iV: b64(iv) } }), 2001, 'iv');
        ok(await s.update(s.path('reg', 'p5'), { 'senv:Cph': { msg: b64(cbc(key, iv, { padding: 'none' }).encrypt(rnd(32))) } }), 2004, 'unpadded ciphertext');
        fails(await s.retrieve(s.path('reg', 'p5', 'decrypt')), 4102, 'bad padding', /padding/);
        // docs/mcs.md: a second operation with no UPDATE between runs over the consumed message again.
        const once = rnd(40);
        ok(await s.update(s.path('reg', 'p5'), { 'senv:Cph': { msg: b64(once) } }), 2004, 'a new message');
        const first = body(ok(await s.retrieve(s.path('reg', 'p5', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD;
        equal(body(await s.retrieve(s.path('reg', 'p5')), 'senv:Cph').cbs, 40, 'the consumed message is still held');
        const again = body(ok(await s.retrieve(s.path('reg', 'p5', 'encrypt')), 2000, 'encrypt again'), 'senv:Cph').cD;
        equalBytes(unb64(again), cbc(key, iv, { padding: 'pkcs5' }).encrypt(once), 'the same message encrypted once more');
        equal(again, first, 'as the first time');
      },
    },
    {
      name: 'an operation refused with 4005 (no key, no parameters) keeps the message: later chunks append to it',
      async run() {
        const s = new Session(await engineWith(backend), 'CAE1');
        await s.register();
        const rnd = prng(78);
        const key = rnd(16), nonce = rnd(12), first = rnd(300), second = rnd(5000);
        const c = s.path('reg', 'c');
        ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'c', Calg: 1001, mbs: 1 << 16, kDt: b64(key) } }), 2001, 'cipher without parameters');
        ok(await s.update(c, { 'senv:Cph': { msg: b64(first) } }), 2004, 'first chunk');
        fails(await s.retrieve(`${c}/encrypt`), 4005, 'no nonce yet', /^create an algorithmSpecificParameter child with nc \(12 bytes\) first$/);
        equal(body(await s.retrieve(c), 'senv:Cph').cbs, first.length, 'the data held is unchanged');
        // A child without the nonce: the text says where it goes (a second child would be 4105).
        ok(await s.create(c, 20001, { 'senv:algP': { rn: 'p', aD: b64(rnd(8)) } }), 2001, 'parameters without a nonce');
        fails(await s.retrieve(`${c}/encrypt`), 4005, 'still no nonce', /^set nc \(12 bytes\) in the algorithmSpecificParameter 'p' first$/);
        ok(await s.delete(`${c}/p`), 2002, 'that child gone');
        ok(await s.create(c, 20001, { 'senv:algP': { nc: b64(nonce) } }), 2001, 'nonce');
        ok(await s.update(c, { 'senv:Cph': { msg: b64(second) } }), 2004, 'second chunk');
        const ct = unb64(body(ok(await s.retrieve(`${c}/encrypt`), 2000, 'encrypt'), 'senv:Cph').cD);
        const whole = new Uint8Array([...first, ...second]);
        equalBytes(ct, gcm(key, nonce).encrypt(whole), 'the refused operation dropped no chunk');
        // A signature with nothing to verify against yet.
        const m = s.path('reg', 'm');
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'm', Salg: 33, msg: b64(first), Sgn: b64(rnd(64)) } }), 2001, 'ECDSA without keys');
        fails(await s.retrieve(`${m}/verifySignature`), 4005, 'no key to verify with', /no key/);
        fails(await s.retrieve(`${m}/calculateSignature`), 4005, 'no key to sign with', /no secret key/);
        ok(await s.update(m, { 'senv:Sgn': { msg: b64(second) } }), 2004, 'second chunk');
        equalBytes(unb64(body(await s.retrieve(m), 'senv:Sgn').msg), whole, 'the message kept both chunks');
        // A key but no signature to verify yet: the chunk before the refusal is still part of the message the MAC covers.
        const h = s.path('reg', 'h');
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'h', Salg: 25, kDt: b64(key), msg: b64(first) } }), 2001, 'HMAC without a signature');
        fails(await s.retrieve(`${h}/verifySignature`), 4005, 'no signature to verify', /^no signature to verify: UPDATE Sgn first$/);
        ok(await s.update(h, { 'senv:Sgn': { msg: b64(second), Sgn: b64(hmac('SHA-256', key, whole)) } }), 2004, 'second chunk and the MAC of both');
        equal(body(ok(await s.retrieve(`${h}/verifySignature`), 2000, 'verify'), 'senv:Sgn').vR, true, 'the MAC of both chunks verifies');
      },
    },
    {
      name: '<signature> AES-CMAC (49) per RFC 4493 and CBC-MAC (18) against the core',
      async run() {
        const s = new Session(await engineWith(backend), 'CAE1');
        await s.register();
        const key = '2b7e151628aed2a6abf7158809cf4f3c';
        const k = Uint8Array.from(key.match(/../g)!, (h) => parseInt(h, 16));
        const m = Uint8Array.from('6bc1bee22e409f96e93d7e117393172a'.match(/../g)!, (h) => parseInt(h, 16));
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'cm', Salg: 49, kDt: b64(k) } }), 2001, 'cmac');
        equalHex(unb64(body(await s.retrieve(s.path('reg', 'cm', 'cSgn')), 'senv:Sgn').Sgn), 'bb1d6929e95937287fa37d129b756746', 'RFC 4493 empty');
        ok(await s.update(s.path('reg', 'cm'), { 'senv:Sgn': { msg: b64(m) } }), 2004, 'msg');
        equalHex(unb64(body(await s.retrieve(s.path('reg', 'cm', 'cSgn')), 'senv:Sgn').Sgn), '070a16b46b4d4144f79bdd9dd04a287c', 'RFC 4493 16 bytes');
        equal(body(await s.retrieve(s.path('reg', 'cm', 'vSgn')), 'senv:Sgn').vR, true, 'verifies');
        const rnd = prng(18);
        const big = rnd(96000);
        ok(await s.create(s.seId, 20012, { 'senv:Sgn': { rn: 'cb', Salg: 18, kDt: b64(k) } }), 2001, 'cbc-mac');
        for (let off = 0; off < big.length; off += 12000) ok(await s.update(s.path('reg', 'cb'), { 'senv:Sgn': { msg: b64(big.subarray(off, off + 12000)) } }), 2004, 'chunk');
        equalBytes(unb64(body(await s.retrieve(s.path('reg', 'cb', 'cSgn')), 'senv:Sgn').Sgn), cbcMac(k, big), 'CBC-MAC chunked');
        ok(await s.update(s.path('reg', 'cm'), { 'senv:Sgn': { msg: b64(big) } }), 2004, 'cmac big');
        equalBytes(unb64(body(await s.retrieve(s.path('reg', 'cm', 'cSgn')), 'senv:Sgn').Sgn), cmac(k, big), 'CMAC big');
        ok(await s.update(s.path('reg', 'cb'), { 'senv:Sgn': { msg: b64(rnd(17)) } }), 2004, 'not whole blocks');
        fails(await s.retrieve(s.path('reg', 'cb', 'cSgn')), 4102, 'CBC-MAC of 17 bytes', /multiple of 16/);
        // A failed operation leaves no earlier result beside the message it ended (as <cipher>'s cD).
        equal(body(await s.retrieve(s.path('reg', 'cb')), 'senv:Sgn').Sgn, undefined, 'the earlier Sgn is gone');
        fails(await s.create(s.seId, 20012, { 'senv:Sgn': { Salg: 49, kDt: b64(rnd(20)) } }), 4000, 'CMAC key length', /kDt/);
        const exportable = await createExportable(s, 20012, 'senv:Sgn', { rn: 'g', Salg: 49 }, 'no key');
        const kDt = body(ok(await s.retrieve(s.path('reg', 'g', 'gnK')), 2000, 'gnK'), 'senv:Sgn').kDt;
        if (exportable) assert(unb64(kDt).length === 32, 'generated AES-256 key');
        else equal(kDt, undefined, 'a device key is never shown');
        equal(unb64(body(ok(await s.retrieve(s.path('reg', 'g', 'cSgn')), 2000, 'sign'), 'senv:Sgn').Sgn).length, 16, 'CMAC under the generated key');
      },
    },
    {
      name: 'streams follow the data and the parameters: a second long message, a nonce changed or removed mid-message, results of earlier messages gone (found by mutation testing)',
      async run() {
        const engine = await engineWith(backend);
        const s = new Session(engine, 'CAE1');
        await s.register();
        const rnd = prng(811);
        // Longer than a batch (32 KiB), so the data streams into the backend as it arrives.
        const m1 = rnd(40000), m2 = rnd(80000);
        ok(await s.create(s.seId, 20004, { 'senv:Hsh': { rn: 'h', Halg: 4 } }), 2001, 'hash');
        for (const [i, m] of [m1, m2].entries()) {
          ok(await s.update(s.path('reg', 'h'), { 'senv:Hsh': { msg: b64(m) } }), 2004, `message ${i + 1}`);
          equalBytes(unb64(body(ok(await s.retrieve(s.path('reg', 'h', 'cHsh')), 2000, 'hash'), 'senv:Hsh').Hv), sha256(m), `message ${i + 1}: whole`);
        }
        const key = rnd(16), n1 = rnd(12), n2 = rnd(12);
        const cipher = async (rn: string) => {
          ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn, Calg: 1001, mbs: 200000, kDt: b64(key) } }), 2001, rn);
          ok(await s.create(s.path('reg', rn), 20001, { 'senv:algP': { rn: 'p', nc: b64(n1) } }), 2001, `${rn}: nonce`);
          ok(await s.update(s.path('reg', rn), { 'senv:Cph': { msg: b64(m1) } }), 2004, `${rn}: first part`);
        };
        // A nonce changed mid-message: the whole message under the new one (never a part under the old: nonce reuse).
        await cipher('c');
        ok(await s.update(s.path('reg', 'c', 'p'), { 'senv:algP': { nc: b64(n2) } }), 2004, 'new nonce');
        ok(await s.update(s.path('reg', 'c'), { 'senv:Cph': { msg: b64(m1) } }), 2004, 'second part');
        const whole = new Uint8Array([...m1, ...m1]);
        equalBytes(unb64(body(ok(await s.retrieve(s.path('reg', 'c', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD), gcm(key, n2).encrypt(whole), 'under the new nonce, whole');
        // Parameters removed mid-message: no operation until new ones are given.
        await cipher('d');
        ok(await s.delete(s.path('reg', 'd', 'p')), 2002, 'parameters removed');
        fails(await s.retrieve(s.path('reg', 'd', 'encrypt')), 4005, 'no nonce', /algorithmSpecificParameter/);
        ok(await s.create(s.path('reg', 'd'), 20001, { 'senv:algP': { nc: b64(n2) } }), 2001, 'new parameters');
        equalBytes(unb64(body(ok(await s.retrieve(s.path('reg', 'd', 'encrypt')), 2000, 'encrypt'), 'senv:Cph').cD), gcm(key, n2).encrypt(m1), 'the message kept, under the new nonce');
        // Parent links: a resource's pi is its parent's ri.
        const reg = body(await s.retrieve(s.seId), 'senv:Senv').ri;
        const c = body(await s.retrieve(s.path('reg', 'c')), 'senv:Cph');
        equal(c.pi, reg, '<cipher> pi is the registration');
        equal(body(await s.retrieve(s.path('reg', 'c', 'p')), 'senv:algP').pi, c.ri, 'parameters\' pi is the <cipher>');
        // Values refused, not silently taken: aD on CBC, cbs 0 with data, bytes that are not base64.
        ok(await s.create(s.seId, 20002, { 'senv:Cph': { rn: 'cbc', Calg: 24, mbs: 64, kDt: b64(key) } }), 2001, 'CBC');
        fails(await s.create(s.path('reg', 'cbc'), 20001, { 'senv:algP': { iV: b64(rnd(16)), aD: b64(rnd(4)) } }), 4000, 'aD on CBC', /aD/);
        fails(await s.update(s.path('reg', 'cbc'), { 'senv:Cph': { cbs: 0, msg: b64(rnd(1)) } }), 4000, 'cbs 0 with data', /cbs/);
        fails(await s.update(s.path('reg', 'cbc'), { 'senv:Cph': { msg: 'QUJ\u0144' } }), 4000, 'base64 with a letter outside it', /msg/);
      },
    },
  ];
}

export const mcsCipherSuite = mcsCipherCases();
