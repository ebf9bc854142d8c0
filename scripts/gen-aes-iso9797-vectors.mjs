// Builds test/vectors/derived/aes_iso9797_cbcmac.json: ISO/IEC 9797-1 padding
// methods 1 and 2 with AES-CBC, and CBC-MAC with a zero IV (TS-0016 values
// 22, 23 and 18), for which no standards body publishes vectors. Each value
// comes from node:crypto's unpadded AES-CBC over input padded by hand here,
// a construction independent of senv. Inputs are derived from a fixed seed
// with SHA-256 so a rerun writes the same file.
import nodeCrypto from 'node:crypto';
import { writeFile, mkdir } from 'node:fs/promises';

let counter = 0;
function bytes(n) {
  const out = Buffer.alloc(n);
  for (let off = 0; off < n; off += 32) {
    nodeCrypto.createHash('sha256').update(`senv iso9797 vectors ${counter++}`).digest().copy(out, off, 0, Math.min(32, n - off));
  }
  return out;
}

function cbcNoPad(key, iv, data) {
  const c = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-cbc' : 'aes-256-cbc', key, iv);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]);
}

// Method 1: zero bytes up to a positive multiple of 16 (empty input: one block).
const m1 = (p) => Buffer.concat([p, Buffer.alloc(p.length === 0 ? 16 : (16 - (p.length % 16)) % 16)]);
// Method 2: 0x80 then zero bytes, always at least one byte.
const m2 = (p) => Buffer.concat([p, Buffer.from([0x80]), Buffer.alloc(15 - (p.length % 16))]);

const LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 64, 100];
const cases = [];
for (const [padding, pad] of [['iso9797-m1', m1], ['iso9797-m2', m2]]) {
  for (const keyLen of [16, 32]) {
    for (const len of LENGTHS) {
      const key = bytes(keyLen), iv = bytes(16), plaintext = bytes(len);
      const padded = pad(plaintext);
      cases.push({ padding, key: key.toString('hex'), iv: iv.toString('hex'), plaintext: plaintext.toString('hex'), padded: padded.toString('hex'), ciphertext: cbcNoPad(key, iv, padded).toString('hex') });
    }
  }
}
const cbcMac = [];
for (const keyLen of [16, 32]) {
  for (const len of [16, 32, 48, 64, 160]) {
    const key = bytes(keyLen), msg = bytes(len);
    cbcMac.push({ key: key.toString('hex'), msg: msg.toString('hex'), mac: cbcNoPad(key, Buffer.alloc(16), msg).subarray(-16).toString('hex') });
  }
}
const root = new URL('../test/vectors/derived/', import.meta.url);
await mkdir(root, { recursive: true });
const doc = {
  source: 'scripts/gen-aes-iso9797-vectors.mjs: node:crypto AES-CBC without padding over input padded by hand (ISO/IEC 9797-1 methods 1 and 2); CBC-MAC = last block of AES-CBC with a zero IV',
  cbc: cases,
  cbcMac,
};
await writeFile(new URL('aes_iso9797_cbcmac.json', root), JSON.stringify(doc, null, 1) + '\n');
console.log(`wrote ${cases.length} CBC and ${cbcMac.length} CBC-MAC cases`);
