// Edges of the WASM core that the vector suites and the differential tests
// leave open (found by mutation testing of assembly/): what the static
// scratch keeps after a call, and limits checked at the ABI itself.
// Oracles: node:crypto and the standards' limits; residue is found by running
// the same calls with two different secrets and comparing all of memory.
import { describe, it, expect, beforeEach } from 'vitest';
import nodeCrypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { initSync, CORE_BUILDS, gcm, ccm, cbc, cmac, createCbcMac, aesKey, ecdsa, hmac, hashMany, HmacDrbg, LengthError, PaddingError, StateError, type CoreBuild } from '../../src/index.ts';
import { core } from '../../src/core/loader.ts';
import type { CoreExports } from '../../src/core/exports.ts';
import { p256, p384 } from '@noble/curves/nist.js';

/**
 * Offsets of linear memory that differ between two runs of `run` with
 * different secrets (1 and 2), after a warm-up run (tables built on first use,
 * memory grown). The I/O window is cleared first: what stays there is the
 * facade's business (core-inputs.test.ts).
 */
function residue(build: CoreBuild, run: (secret: number) => void): number[] {
  initSync({ build });
  const c = core();
  const snapshot = (s: number) => {
    run(s);
    c.x.zeroize(c.io, c.ioSize);
    return c.read(0, c.mem().length);
  };
  snapshot(3);
  const a = snapshot(1), b = snapshot(2);
  const diff: number[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) diff.push(i);
  return diff;
}

const filled = (n: number, s: number) => new Uint8Array(n).fill(0x40 + s);

describe('no secret stays in static memory after a call', () => {
  for (const build of CORE_BUILDS) {
    it(`${build}: one-shot GCM (12-byte and 16-byte nonces, 8 blocks and more), CCM, CBC and CMAC, with raw keys and key objects`, () => {
      const diff = residue(build, (s) => {
        const raw = filled(32, s);
        const key = aesKey(raw);
        for (const k of [raw, key]) {
          const pt = filled(200, s);
          for (const nonce of [new Uint8Array(12), new Uint8Array(16)]) {
            const g = gcm(k, nonce);
            const sealed = g.encrypt(pt);
            expect(Buffer.from(g.decrypt(sealed)).equals(Buffer.from(pt))).toBe(true);
          }
          gcm(k, new Uint8Array(12)).encrypt(filled(20, s)); // under 8 blocks: H^2.. are never prepared
          ccm(k, new Uint8Array(13)).encrypt(pt);
          cbc(k, new Uint8Array(16)).encrypt(pt);
          cmac(k, pt);
        }
        key.destroy();
      });
      expect(diff.slice(0, 8)).toEqual([]);
    });

    // Every other case encrypts after its last key expansion, which clears the batch planes
    // anyway; a key expanded and released unused must leave them clear as well.
    it(`${build}: AES keys expanded and released unused, on the heap and in the one-shot slot`, () => {
      const diff = residue(build, (s) => {
        for (const len of [16, 32]) aesKey(filled(len, s)).destroy();
        const c = core();
        c.mem().set(filled(32, s), c.io);
        expect(c.x.aes_key_create(c.io, 32, 1)).not.toBe(0);
        c.x.aes_scratch_clear();
      });
      expect(diff.slice(0, 8)).toEqual([]);
    });

    // Each call wipes the scratch of the ECDSA code, so each is checked on its own.
    for (const op of ['sign', 'getPublicKey'] as const) {
      it(`${build}: ECDSA ${op}, P-256 and P-521`, () => {
        const diff = residue(build, (s) => {
          for (const curve of ['P-256', 'P-521'] as const) {
            const e = ecdsa(curve);
            const sk = filled(e.scalarLength, s);
            sk[0] = 1;
            if (op === 'sign') e.sign(filled(20, 0), sk, { extraEntropy: false });
            else e.getPublicKey(sk);
          }
        });
        expect(diff.slice(0, 8)).toEqual([]);
      });
    }

    it(`${build}: hashMany over four equal-length messages (the SIMD lanes) and a fifth`, () => {
      const diff = residue(build, (s) => {
        hashMany('SHA-256', [0, 1, 2, 3, 4].map((i) => filled(100, s + i)));
      });
      expect(diff.slice(0, 8)).toEqual([]);
    });

    it(`${build}: HMAC_DRBG instantiate, generate with additional input, reseed`, () => {
      const diff = residue(build, (s) => {
        const d = new HmacDrbg({ hash: 'SHA-512', entropy: (n) => filled(n, s) });
        d.generate(100, filled(10, s));
        d.reseed(filled(5, s));
        d.generate(10);
        d.destroy();
      });
      expect(diff.slice(0, 8)).toEqual([]);
    });
  }
});

// The raw exports, for what the facade never asks of the core (it checks
// these limits itself) but a host using docs/wasm-abi*.md directly may.
const ERR_LENGTH = -2, ERR_STATE = -7;

describe('the AES exports keep their rules at the ABI', () => {
  beforeEach(() => void initSync()); // the best build (a test above may have left another loaded)
  // The modes call the block function on their own scratch; only the raw ECB exports hand it
  // the caller's pointers and any block count. 1 to 20 blocks cover every tail of both batch
  // sizes (8 and 4 blocks) and the SIMD builds' one-block path (up to 3 blocks); ranges at
  // the last byte of memory show a batch that reads or writes past its n blocks.
  it('aes_encrypt_blocks and aes_decrypt_blocks equal node:crypto AES-ECB for 1 to 20 blocks, in and out of place, nothing written past dst, up to the last byte of memory', () => {
    const ecb = (key: Uint8Array, data: Uint8Array) => {
      const e = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-ecb' : 'aes-256-ecb', key, null).setAutoPadding(false);
      return Buffer.concat([e.update(data), e.final()]);
    };
    for (const build of CORE_BUILDS) {
      const mod = new WebAssembly.Module(readFileSync(new URL(`../../build/senv.${build}.wasm`, import.meta.url)));
      const x = new WebAssembly.Instance(mod, {}).exports as unknown as CoreExports & { memory: WebAssembly.Memory };
      const io = x.io_ptr();
      const mem = () => new Uint8Array(x.memory.buffer);
      const keys = [nodeCrypto.randomBytes(16), nodeCrypto.randomBytes(32)];
      const handles = keys.map((key) => (mem().set(key, io), x.aes_key_create(io, key.length, 0)));
      x.memory.grow(1); // a page no allocator block lies in: the ranges below may end at its last byte
      const end = x.memory.buffer.byteLength, guarded = io + 4096;
      for (const [i, key] of keys.entries()) {
        for (let n = 1; n <= 20; n++) {
          const len = 16 * n, pt = nodeCrypto.randomBytes(len), ct = ecb(key, pt);
          const places = { 'out of place': [io + 64, guarded], 'in place': [io + 64, io + 64], 'in place at the end': [end - len, end - len], 'src at the end': [end - len, guarded], 'dst at the end': [io + 64, end - len] };
          for (const [where, [src, dst]] of Object.entries(places) as [string, [number, number]][]) {
            for (const decrypt of [false, true]) {
              const what = `${build}, ${key.length}-byte key, ${n} blocks, ${decrypt ? 'decrypt' : 'encrypt'} ${where}`;
              mem().fill(0xa5, guarded - 16, guarded + len + 16);
              mem().set(decrypt ? ct : pt, src);
              expect((decrypt ? x.aes_decrypt_blocks : x.aes_encrypt_blocks)(handles[i]!, src, dst, len), what).toBe(0);
              expect(Buffer.from(mem().subarray(dst, dst + len)).toString('hex'), what).toBe((decrypt ? pt : ct).toString('hex'));
              if (dst === guarded) {
                const around = [...mem().subarray(guarded - 16, guarded), ...mem().subarray(guarded + len, guarded + len + 16)];
                expect(around.every((b) => b === 0xa5), `${what}: the bytes around dst`).toBe(true);
              }
            }
          }
        }
      }
      handles.forEach((k) => x.ctx_free(k));
    }
  });

  it('the one-shot key slot holds nothing of a key replaced without aes_scratch_clear', () => {
    for (const build of CORE_BUILDS) {
      const diff = residue(build, (s) => {
        const c = core(), x = c.x;
        c.mem().set(filled(16, s), c.io);
        const k1 = x.aes_key_create(c.io, 16, 1);
        c.mem().set(new Uint8Array(12), c.io + 32);
        const op = x.gcm_create(k1, c.io + 32, 12, 16, 0, 1);
        expect(x.gcm_update(op, c.io + 64, c.io + 64, 256)).toBe(256); // 16 blocks: GHASH prepares H^1..H^8 in the key
        c.mem().set(filled(16, 9), c.io);
        const k2 = x.aes_key_create(c.io, 16, 1);
        expect(k2).toBe(k1);
        x.aes_scratch_clear();
      });
      expect(diff.slice(0, 8), build).toEqual([]);
    }
  });

  it('a one-shot operation (scratch = 1) starts clean after one of any mode left unfinished without aes_scratch_clear: it equals a heap operation', () => {
    for (const build of CORE_BUILDS) {
      initSync({ build });
      const c = core(), x = c.x, io = c.io;
      c.mem().set(nodeCrypto.randomBytes(512), io);
      const k = x.aes_key_create(io, 16, 0);
      const out = io + 1024;
      // Each mode's calls over the same inputs, writing at out; the bytes they wrote.
      const modes: Record<string, (scratch: number) => Buffer> = {
        'GCM, 16-byte nonce': (s) => { const op = x.gcm_create(k, io, 16, 16, 0, s); x.gcm_aad(op, io + 16, 7); x.gcm_update(op, io + 32, out, 37); x.gcm_final(op, out + 37); return Buffer.from(c.read(out, 53)); },
        'GCM, 12-byte nonce': (s) => { const op = x.gcm_create(k, io, 12, 16, 0, s); x.gcm_aad(op, io + 16, 7); x.gcm_update(op, io + 32, out, 37); x.gcm_final(op, out + 37); return Buffer.from(c.read(out, 53)); },
        CCM: (s) => { const op = x.ccm_create(k, io, 13, 16, 7n, 37n, 0, s); x.ccm_aad(op, io + 16, 7); x.ccm_update(op, io + 32, out, 37); x.ccm_final(op, out + 37); return Buffer.from(c.read(out, 53)); },
        CBC: (s) => { const op = x.cbc_create(k, io, 24, 0, s); const w = x.cbc_update(op, io + 32, out, 37); x.cbc_final(op, out + w); return Buffer.from(c.read(out, 48)); },
        CMAC: (s) => { const op = x.mac_create(k, 49, s); x.mac_update(op, io + 32, 37); x.mac_final(op, out); return Buffer.from(c.read(out, 16)); },
      };
      // Left unfinished in the static operation slot, part of a block pending.
      const dirty: Record<string, () => void> = {
        GCM: () => { const op = x.gcm_create(k, io + 100, 16, 12, 1, 1); x.gcm_aad(op, io + 200, 19); x.gcm_update(op, io + 250, out + 200, 21); },
        CCM: () => { const op = x.ccm_create(k, io + 100, 7, 8, 19n, 60n, 1, 1); x.ccm_aad(op, io + 200, 19); x.ccm_update(op, io + 250, out + 200, 21); },
        CBC: () => { const op = x.cbc_create(k, io + 100, 23, 1, 1); x.cbc_update(op, io + 250, out + 200, 37); },
        'CBC-MAC': () => { const op = x.mac_create(k, 18, 1); x.mac_update(op, io + 250, 21); },
      };
      for (const [name, run] of Object.entries(modes)) {
        const heap = run(0);
        for (const [before, left] of Object.entries(dirty)) {
          left();
          expect(run(1).equals(heap), `${build}: ${name} after ${before}`).toBe(true);
        }
      }
      x.aes_scratch_clear();
      x.ctx_free(k);
      x.zeroize(io, 2048);
    }
  });

  it('key, nonce and tag lengths: exactly the ones SP 800-38C/D and docs/wasm-abi-aes.md list', () => {
    const c = core(), x = c.x, io = c.io;
    c.mem().set(nodeCrypto.randomBytes(64), io);
    const keys = [...Array(65).keys()].filter((n) => x.aes_key_create(io, n, 1) !== 0);
    x.aes_scratch_clear();
    expect(keys, 'AES key lengths').toEqual([16, 32]);
    const k = x.aes_key_create(io, 16, 0);
    const ok = (op: number) => (op ? (x.ctx_free(op), true) : false);
    const range = [...Array(20).keys()];
    expect(range.filter((t) => ok(x.gcm_create(k, io, 12, t, 0, 0))), 'GCM tag lengths').toEqual([4, 8, 12, 13, 14, 15, 16]);
    expect(range.filter((n) => ok(x.gcm_create(k, io, n, 16, 0, 0))), 'GCM nonce lengths').toEqual(range.slice(1));
    expect(range.filter((t) => ok(x.ccm_create(k, io, 12, t, 0n, 0n, 0, 0))), 'CCM tag lengths').toEqual([4, 6, 8, 10, 12, 14, 16]);
    expect(range.filter((n) => ok(x.ccm_create(k, io, n, 16, 0n, 0n, 0, 0))), 'CCM nonce lengths').toEqual([7, 8, 9, 10, 11, 12, 13]);
    expect(range.filter((pad) => ok(x.cbc_create(k, io, pad, 0, 0))), 'CBC paddings below 20').toEqual([13]);
    const ids = [...Array(256).keys(), 0x100 + 49, 0x10000 + 18];
    expect(ids.filter((alg) => ok(x.cbc_create(k, io, alg, 0, 0))), 'CBC padding ids').toEqual([13, 22, 23, 24]);
    expect(ids.filter((alg) => ok(x.mac_create(k, alg, 0))), 'MAC algorithm ids').toEqual([18, 49]);
    for (const len of [1, 15, 17, 31]) {
      expect(x.aes_encrypt_blocks(k, io, io + 128, len), `ECB ${len} bytes`).toBe(ERR_LENGTH);
      expect(x.aes_decrypt_blocks(k, io, io + 128, len), `ECB ${len} bytes`).toBe(ERR_LENGTH);
    }
    // aes_key_copy: 0 for anything but a key context (docs/wasm-abi-aes.md), nothing allocated.
    const h = x.hmac_create(4, io, 16), op = x.cbc_create(k, io, 13, 0, 0), held = x.mem_in_use();
    for (const [what, handle] of [['null', 0], ['the I/O window', io], ['an HMAC context', h], ['a CBC context', op], ['a key context plus 8', k + 8]] as const) {
      expect(x.aes_key_copy(handle), `aes_key_copy of ${what}`).toBe(0);
    }
    expect(x.mem_in_use()).toBe(held);
    x.ctx_free(op);
    x.ctx_free(h);
    x.ctx_free(k);
  });

  it('CCM: the payload must fit its length field (q = 15 - nonce length bytes), SP 800-38C A.1', () => {
    const c = core(), x = c.x;
    c.mem().set(nodeCrypto.randomBytes(16), c.io);
    const k = x.aes_key_create(c.io, 16, 0);
    const create = (nonceLen: number, msgLen: bigint) => {
      const op = x.ccm_create(k, c.io + 32, nonceLen, 16, 0n, msgLen, 0, 0);
      if (op) x.ctx_free(op);
      return op !== 0;
    };
    for (const nonceLen of [13, 12, 11, 9, 8]) {
      const q = BigInt(15 - nonceLen);
      expect(create(nonceLen, (1n << (8n * q)) - 1n), `nonce ${nonceLen}: largest`).toBe(true);
      expect(create(nonceLen, 1n << (8n * q)), `nonce ${nonceLen}: one more`).toBe(false);
      expect(create(nonceLen, 1n << (8n * q + 1n)), `nonce ${nonceLen}: twice that`).toBe(false);
    }
    expect(create(7, (1n << 64n) - 1n), 'nonce 7: q = 8 takes any u64').toBe(true);
    // node:crypto agrees on the largest payload a 13-byte nonce allows.
    expect(() => nodeCrypto.createCipheriv('aes-128-ccm', Buffer.alloc(16), Buffer.alloc(13), { authTagLength: 16 }).setAAD(Buffer.alloc(0), { plaintextLength: 65536 })).toThrow();
    x.ctx_free(k);
  });

  // 4 GiB of AAD or 2^56 bytes of payload cannot be passed in a test: the
  // context's counts (u64 at op + 48 and op + 56, assembly/ccm.ts AADSEEN and
  // MSGSEEN) are set to the declared lengths instead, so the tag is that of B0
  // and the AAD length prefix alone (SP 800-38C A.2), built here from AES-ECB.
  it('CCM: B0 carries all q bytes of the payload length and the AAD prefix takes its 6- and 10-byte forms up to their last values (RFC 3610 2.2)', () => {
    const c = core(), x = c.x, io = c.io;
    const key = nodeCrypto.randomBytes(16);
    const ecb = (block: Uint8Array) => {
      const e = nodeCrypto.createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
      return new Uint8Array(Buffer.concat([e.update(block), e.final()]));
    };
    const xor = (a: Uint8Array, b: Uint8Array) => a.map((v, i) => v ^ b[i]!);
    const be = (v: bigint, n: number) => Uint8Array.from({ length: n }, (_, i) => Number((v >> BigInt(8 * (n - 1 - i))) & 0xffn));
    const prefix = (a: bigint) => (a < 0xff00n ? be(a, 2) : a < 1n << 32n ? Uint8Array.from([0xff, 0xfe, ...be(a, 4)]) : Uint8Array.from([0xff, 0xff, ...be(a, 8)]));
    c.mem().set(key, io);
    const k = x.aes_key_create(io, 16, 0);
    const cases: [number, bigint, bigint][] = [
      [13, 0xfffffffen, 0n], [13, 0xffffffffn, 0n], [13, 1n << 32n, 0n], [13, (1n << 32n) + 0x0102n, 0n], [13, (1n << 64n) - 1n, 0n],
      [7, 0n, 0x0102030405060708n], [7, 0n, (1n << 64n) - 1n], [7, 0xff00n, 0xff00000000000000n], [8, 0n, 0x00ffeeddccbbaa99n], [11, 1n << 32n, 0xfedcba98n],
    ];
    for (const [nonceLen, aadLen, msgLen] of cases) {
      const nonce = nodeCrypto.randomBytes(nonceLen), q = 15 - nonceLen, t = 8;
      c.mem().set(nonce, io + 32);
      const op = x.ccm_create(k, io + 32, nonceLen, t, aadLen, msgLen, 0, 0);
      const view = new DataView(c.mem().buffer);
      view.setBigUint64(op + 48, aadLen, true);
      view.setBigUint64(op + 56, msgLen, true);
      const what = `nonce ${nonceLen}, AAD ${aadLen.toString(16)}, payload ${msgLen.toString(16)}`;
      expect(x.ccm_final(op, io + 256), what).toBe(t);
      const b0 = Uint8Array.from([(aadLen ? 0x40 : 0) | (((t - 2) / 2) << 3) | (q - 1), ...nonce, ...be(msgLen, q)]);
      let mac = ecb(b0);
      if (aadLen) {
        const block = new Uint8Array(16);
        block.set(prefix(aadLen));
        mac = ecb(xor(mac, block));
      }
      const tag = xor(mac, ecb(Uint8Array.from([q - 1, ...nonce, ...new Uint8Array(q)]))).subarray(0, t);
      expect(Buffer.from(c.read(io + 256, t)).toString('hex'), what).toBe(Buffer.from(tag).toString('hex'));
      x.ctx_free(op);
    }
    x.ctx_free(k);
    x.zeroize(io, 512);
  });

  it('CBC decryption, in place too, leaves neither the held ciphertext nor the block set aside in static memory', () => {
    for (const build of CORE_BUILDS) {
      const diff = residue(build, (s) => {
        const c = core(), x = c.x;
        c.mem().set(filled(16, s), c.io);
        const k = x.aes_key_create(c.io, 16, 1);
        const op = x.cbc_create(k, c.io + 32, 13, 1, 1);
        c.mem().set(filled(160, s), c.io + 64);
        expect(x.cbc_update(op, c.io + 64, c.io + 64, 144)).toBe(128); // 8 blocks in one batch
        expect(x.cbc_update(op, c.io + 208, c.io + 208, 16)).toBe(16); // in place: the held block comes out over the next input
        expect(x.cbc_final(op, c.io + 208)).toBe(16);
        x.aes_scratch_clear();
      });
      expect(diff.slice(0, 8), build).toEqual([]);
    }
  });

  it('GCM and CCM refuse calls out of order: AAD after data, update or a second final after final, verify on an encryption and final on a decryption', () => {
    const c = core(), x = c.x, io = c.io;
    c.mem().set(nodeCrypto.randomBytes(16), io);
    const k = x.aes_key_create(io, 16, 0);
    const gcmOp = (decrypt: number) => x.gcm_create(k, io + 32, 12, 16, decrypt, 0);
    const ccmOp = (decrypt: number) => x.ccm_create(k, io + 32, 12, 16, 4n, 4n, decrypt, 0);
    const tag = io + 256;

    let op = gcmOp(0);
    expect(x.gcm_aad(op, io + 64, 4)).toBe(0);
    expect(x.gcm_update(op, io + 64, io + 128, 4)).toBe(4);
    expect(x.gcm_aad(op, io + 64, 4), 'gcm_aad after gcm_update').toBe(ERR_STATE);
    expect(x.gcm_verify(op, tag), 'gcm_verify on an encryption').toBe(ERR_STATE);
    expect(x.gcm_final(op, tag)).toBe(16);
    expect(x.gcm_final(op, tag), 'second gcm_final').toBe(ERR_STATE);
    expect(x.gcm_update(op, io + 64, io + 128, 4), 'gcm_update after gcm_final').toBe(ERR_STATE);
    x.ctx_free(op);
    op = gcmOp(1);
    expect(x.gcm_final(op, tag), 'gcm_final on a decryption').toBe(ERR_STATE);
    x.ctx_free(op);

    op = ccmOp(0);
    expect(x.ccm_update(op, io + 64, io + 128, 4), 'ccm_update before the declared AAD').toBe(ERR_STATE);
    expect(x.ccm_aad(op, io + 64, 5), 'more AAD than declared').toBe(ERR_LENGTH);
    expect(x.ccm_aad(op, io + 64, 4)).toBe(0);
    expect(x.ccm_final(op, tag), 'ccm_final short of msgLen').toBe(ERR_LENGTH);
    expect(x.ccm_update(op, io + 64, io + 128, 5), 'more payload than declared').toBe(ERR_LENGTH);
    expect(x.ccm_update(op, io + 64, io + 128, 4)).toBe(4);
    expect(x.ccm_aad(op, io + 64, 0), 'ccm_aad after ccm_update').toBe(ERR_STATE);
    expect(x.ccm_verify(op, tag), 'ccm_verify on an encryption').toBe(ERR_STATE);
    expect(x.ccm_final(op, tag)).toBe(16);
    expect(x.ccm_final(op, tag), 'second ccm_final').toBe(ERR_STATE);
    expect(x.ccm_update(op, io + 64, io + 128, 0), 'ccm_update after ccm_final').toBe(ERR_STATE);
    x.ctx_free(op);
    op = ccmOp(1);
    expect(x.ccm_aad(op, io + 64, 4)).toBe(0);
    expect(x.ccm_update(op, io + 64, io + 128, 4)).toBe(4);
    expect(x.ccm_final(op, tag), 'ccm_final on a decryption').toBe(ERR_STATE);
    x.ctx_free(op);
    x.ctx_free(k);
  });
});

describe('SEC1 public keys: only 04 || X || Y and 02/03 || X, coordinates below p', () => {
  beforeEach(() => void initSync()); // the best build (a test above may have left another loaded)
  const p521 = (1n << 521n) - 1n;
  const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString('hex')}`);
  const bytes = (v: bigint, n: number) => Uint8Array.from(Buffer.from(v.toString(16).padStart(2 * n, '0'), 'hex'));

  it('P-256: prefixes 00, 01, 05, 06 and 07 are refused with either length (no hybrid form)', () => {
    const e = ecdsa('P-256');
    const sk = nodeCrypto.randomBytes(32);
    sk[0] = 1;
    const full = e.getPublicKey(sk), short = e.getPublicKey(sk, true);
    expect(e.isPublicKey(full) && e.isPublicKey(short)).toBe(true);
    for (const prefix of [0, 1, 5, 6, 7]) {
      for (const k of [full, short]) {
        const bad = k.slice();
        bad[0] = prefix;
        expect(e.isPublicKey(bad), `prefix ${prefix}, ${k.length} bytes`).toBe(false);
      }
    }
  });

  it('P-256 and P-384: a compressed x whose x^3 - 3x + b has no square root is refused, as node:crypto refuses it', () => {
    const curves = [
      ['P-256', 'prime256v1', 32, 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n, 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn],
      ['P-384', 'secp384r1', 48, 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n, 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn],
    ] as const;
    const pow = (a: bigint, e: bigint, m: bigint) => {
      let r = 1n;
      for (a %= m; e > 0n; e >>= 1n, a = (a * a) % m) if (e & 1n) r = (r * a) % m;
      return r;
    };
    for (const [curve, nodeName, L, p, b] of curves) {
      const e = ecdsa(curve);
      let found = 0;
      for (let x = 1n; found < 4; x++) {
        const rhs = (((x * x * x - 3n * x + b) % p) + p) % p;
        if (pow(rhs, (p - 1n) / 2n, p) !== p - 1n) continue; // a square: a point exists
        found++;
        for (const prefix of [2, 3]) {
          const k = Uint8Array.from([prefix, ...bytes(x, L)]);
          expect(() => nodeCrypto.ECDH.convertKey(k, nodeName, undefined, undefined, 'uncompressed'), `node:crypto, ${curve} x = ${x}`).toThrow();
          expect(e.isPublicKey(k), `${curve}, x = ${x}, prefix ${prefix}`).toBe(false);
        }
      }
    }
  });

  it('P-521: x + p or y + p (still 66 bytes, the same point mod p) is refused, compressed too', () => {
    const e = ecdsa('P-521');
    const sk = nodeCrypto.randomBytes(66);
    sk[0] = 0;
    sk[1] = 1;
    const full = e.getPublicKey(sk), short = e.getPublicKey(sk, true);
    const x = big(full.subarray(1, 67)), y = big(full.subarray(67));
    expect(e.isPublicKey(full) && e.isPublicKey(short)).toBe(true);
    const xPlusP = Uint8Array.from([4, ...bytes(x + p521, 66), ...bytes(y, 66)]);
    const yPlusP = Uint8Array.from([4, ...bytes(x, 66), ...bytes(y + p521, 66)]);
    const shortPlusP = Uint8Array.from([short[0]!, ...bytes(x + p521, 66)]);
    for (const [what, k] of [['x + p', xPlusP], ['y + p', yPlusP], ['compressed x + p', shortPlusP]] as const) {
      expect(e.isPublicKey(k), what).toBe(false);
    }
  });
});

describe('CBC and the MACs at their empty and partial edges', () => {
  beforeEach(() => void initSync()); // the best build (a test above may have left another loaded)
  const ecb = (key: Uint8Array, block: Uint8Array) => {
    const c = nodeCrypto.createCipheriv(key.length === 16 ? 'aes-128-ecb' : 'aes-256-ecb', key, null).setAutoPadding(false);
    return new Uint8Array(Buffer.concat([c.update(block), c.final()]));
  };

  it('cbc_final: ERR_LENGTH for empty input to decrypt under every padding (method 1 too) and for a partial block without padding; method 1 pads empty input to one block', () => {
    const c = core(), x = c.x, io = c.io;
    const key = nodeCrypto.randomBytes(16), iv = nodeCrypto.randomBytes(16);
    c.mem().set(key, io);
    c.mem().set(iv, io + 32);
    const k = x.aes_key_create(io, 16, 0);
    for (const [padding, decrypt, feed, expected] of [
      [24, 1, 0, ERR_LENGTH], [23, 1, 0, ERR_LENGTH], [13, 1, 0, 0], [22, 1, 0, ERR_LENGTH],
      [13, 0, 5, ERR_LENGTH], [13, 0, 0, 0], [22, 0, 0, 16],
    ] as const) {
      const op = x.cbc_create(k, io + 32, padding, decrypt, 0);
      expect(x.cbc_update(op, io + 64, io + 128, 0), 'an empty update writes nothing').toBe(0);
      if (feed) expect(x.cbc_update(op, io + 64, io + 128, feed)).toBe(0);
      expect(x.cbc_final(op, io + 256), `padding ${padding}, decrypt ${decrypt}, ${feed} bytes`).toBe(expected);
      if (padding === 22 && !decrypt) expect(Buffer.from(c.read(io + 256, 16)).equals(Buffer.from(ecb(key, iv))), 'E(IV ^ 0)').toBe(true);
      x.ctx_free(op);
    }
    x.ctx_free(k);
  });

  it('cbc_final: bad padding leaves the 16 bytes at dst zeroed (docs/wasm-abi-aes.md), not the decrypted block', () => {
    const c = core(), x = c.x, io = c.io;
    const key = nodeCrypto.randomBytes(16), iv = nodeCrypto.randomBytes(16);
    const pt = new Uint8Array(32).fill(0x5a); // last byte 0x5a: neither PKCS#7 nor method 2
    const ct = cbc(key, iv, { padding: 'none' }).encrypt(pt);
    c.mem().set(key, io);
    c.mem().set(iv, io + 32);
    const k = x.aes_key_create(io, 16, 0);
    for (const padding of [24, 23]) {
      const op = x.cbc_create(k, io + 32, padding, 1, 0);
      c.mem().set(ct, io + 64);
      expect(x.cbc_update(op, io + 64, io + 128, 32)).toBe(16);
      c.mem().fill(0xee, io + 256, io + 272);
      expect(x.cbc_final(op, io + 256), `padding ${padding}`).toBe(-6);
      expect(c.read(io + 256, 16).every((b) => b === 0), `padding ${padding}: dst zeroed`).toBe(true);
      x.ctx_free(op);
    }
    x.ctx_free(k);
  });

  it('PKCS#7: a padding byte one bit off, or a value above 16, is a PaddingError as node:crypto says', () => {
    const key = nodeCrypto.randomBytes(16), iv = nodeCrypto.randomBytes(16);
    const tails = [[0x03, 0x02], [0x02, 0x03, 0x03], [0x10 ^ 1, ...new Array(15).fill(0x10)], [0x11], [0x00]];
    for (const tail of tails) {
      const pt = new Uint8Array(32).fill(0x41);
      pt.set(tail, 32 - tail.length);
      const ct = cbc(key, iv, { padding: 'none' }).encrypt(pt);
      const d = nodeCrypto.createDecipheriv('aes-128-cbc', key, iv);
      expect(() => Buffer.concat([d.update(ct), d.final()]), `node:crypto, tail ${tail}`).toThrow();
      expect(() => cbc(key, iv).decrypt(ct), `tail ${tail}`).toThrow(PaddingError);
    }
  });

  it('a finished MAC, HMAC or hash context refuses further input and a second final (ERR_STATE); reset reopens HMAC and hash contexts for a new message', () => {
    const c = core(), x = c.x, io = c.io;
    c.mem().set(nodeCrypto.randomBytes(200), io);
    const k = x.aes_key_create(io, 16, 0);
    for (const alg of [49, 18]) {
      const op = x.mac_create(k, alg, 0);
      expect(x.mac_update(op, io, 32)).toBe(0);
      expect(x.mac_final(op, io + 128)).toBe(16);
      expect(x.mac_update(op, io, 16), `alg ${alg}: update after final`).toBe(ERR_STATE);
      expect(x.mac_final(op, io + 128), `alg ${alg}: second final`).toBe(ERR_STATE);
      x.ctx_free(op);
    }
    x.ctx_free(k);
    const h = x.hmac_create(4, io, 32);
    expect(x.hmac_update(h, io, 16)).toBe(0);
    expect(x.hmac_final(h, io + 128)).toBe(32);
    const mac = Buffer.from(c.read(io + 128, 32));
    expect(mac.equals(nodeCrypto.createHmac('sha256', c.read(io, 32)).update(c.read(io, 16)).digest())).toBe(true);
    expect(x.hmac_update(h, io, 16), 'hmac_update after final').toBe(ERR_STATE);
    expect(x.hmac_final(h, io + 128), 'second hmac_final').toBe(ERR_STATE);
    expect(x.hmac_reset(h)).toBe(0);
    expect(x.hmac_update(h, io, 16)).toBe(0);
    expect(x.hmac_final(h, io + 128)).toBe(32);
    expect(Buffer.from(c.read(io + 128, 32)).equals(mac), 'the same MAC after reset').toBe(true);
    x.ctx_free(h);
    // hash_reset starts a new message (docs/wasm-abi.md), from a finished context and from a partly fed one.
    for (const [alg, name, dl] of [[4, 'sha256', 32], [5, 'sha384', 48], [6, 'sha512', 64]] as const) {
      const ctx = x.hash_create(alg);
      expect(x.hash_update(ctx, io, 40)).toBe(0);
      expect(x.hash_final(ctx, io + c.ioSize - dl + 16), `${name}: a digest across the end of the window`).toBe(ERR_LENGTH);
      expect(x.hash_final(ctx, io + 128)).toBe(dl);
      expect(x.hash_update(ctx, io, 16), `${name}: hash_update after final`).toBe(ERR_STATE);
      expect(x.hash_final(ctx, io + 128), `${name}: second hash_final`).toBe(ERR_STATE);
      for (const fed of ['finished', 'fed 150 bytes']) {
        if (fed !== 'finished') { expect(x.hash_reset(ctx)).toBe(0); expect(x.hash_update(ctx, io, 150)).toBe(0); }
        expect(x.hash_reset(ctx)).toBe(0);
        expect(x.hash_update(ctx, io + 3, 20)).toBe(0);
        expect(x.hash_final(ctx, io + 200)).toBe(dl);
        const want = nodeCrypto.createHash(name).update(c.read(io + 3, 20)).digest();
        expect(Buffer.from(c.read(io + 200, dl)).equals(want), `${name}: the digest of the new message alone after reset (${fed})`).toBe(true);
      }
      x.ctx_free(ctx);
    }
    x.zeroize(io, 512);
  });

  it('CBC-MAC is refused over no input or a partial block, also after empty updates, with the context as it was: the rest of the blocks may follow', () => {
    const c = core(), x = c.x, io = c.io;
    const key = nodeCrypto.randomBytes(16), data = nodeCrypto.randomBytes(32);
    const byNode = () => {
      const e = nodeCrypto.createCipheriv('aes-128-cbc', key, Buffer.alloc(16)).setAutoPadding(false);
      return Buffer.concat([e.update(data), e.final()]).subarray(16);
    };
    c.mem().set(key, io);
    c.mem().set(data, io + 64);
    const k = x.aes_key_create(io, 16, 0);
    for (const [updates, first] of [[0, 0], [1, 0], [2, 0], [0, 15], [1, 17]] as const) {
      const op = x.mac_create(k, 18, 0);
      for (let i = 0; i < updates; i++) expect(x.mac_update(op, io + 64, 0)).toBe(0);
      expect(x.mac_update(op, io + 64, first)).toBe(0);
      expect(x.mac_final(op, io + 128), `${updates} empty updates, ${first} bytes`).toBe(ERR_LENGTH);
      expect(x.mac_update(op, io + 64 + first, 32 - first), `${first} bytes: the rest after the refusal`).toBe(0);
      expect(x.mac_final(op, io + 128)).toBe(16);
      expect(Buffer.from(c.read(io + 128, 16)).equals(byNode()), `${updates} empty updates, ${first} bytes: the MAC of the whole`).toBe(true);
      x.ctx_free(op);
    }
    x.ctx_free(k);
    x.zeroize(io, 160);
    // The facade's stream likewise: a digest() short of a whole block is a LengthError that ends nothing.
    const mac = createCbcMac(key).update(data.subarray(0, 20));
    expect(() => mac.digest()).toThrow(LengthError);
    expect(Buffer.from(mac.update(data.subarray(20)).digest()).equals(byNode())).toBe(true);
    expect(() => mac.update(data), 'finished by the digest() that gave the MAC').toThrow(StateError);
  });
});

describe('hashing at block-sized keys and in batches', () => {
  beforeEach(() => void initSync()); // the best build (a test above may have left another loaded)
  it('HMAC with keys of the block length and one byte either side equals node:crypto (FIPS 198-1: only longer keys are hashed)', () => {
    for (const [name, bl] of [['SHA-256', 64], ['SHA-384', 128], ['SHA-512', 128]] as const) {
      for (const len of [bl - 1, bl, bl + 1]) {
        const key = nodeCrypto.randomBytes(len), msg = nodeCrypto.randomBytes(33);
        const expected = nodeCrypto.createHmac(name.replace('-', '').toLowerCase(), key).update(msg).digest();
        expect(Buffer.from(hmac(name, key, msg)).equals(expected), `${name}, ${len}-byte key`).toBe(true);
      }
    }
  });

  it('hash_many: an offset that goes backwards is ERR_LENGTH before anything is written; equal offsets are an empty message', () => {
    const c = core(), x = c.x, io = c.io;
    const put = (list: number[]) => list.forEach((v, i) => new DataView(c.mem().buffer).setUint32(io + 1024 + 4 * i, v, true));
    c.mem().set(nodeCrypto.randomBytes(256), io);
    c.mem().fill(0x77, io + 2048, io + 2048 + 5 * 32);
    put([0, 10, 20, 15, 40, 50]);
    expect(x.hash_many(4, io, io + 1024, 5, io + 2048)).toBe(ERR_LENGTH);
    expect(c.read(io + 2048, 5 * 32).every((b) => b === 0x77), 'nothing written').toBe(true);
    put([0, 10, 10, 20, 30, 40]);
    expect(x.hash_many(4, io, io + 1024, 5, io + 2048)).toBe(5);
    expect(Buffer.from(c.read(io + 2048 + 32, 32)).equals(nodeCrypto.createHash('sha256').digest())).toBe(true);
  });

  it('hashMany: four messages of which only the last differs in length, and lengths around the 56-byte padding edge, equal node:crypto (every build: the SIMD ones hash four lanes at once)', () => {
    for (const build of CORE_BUILDS) for (const lens of [[20, 20, 20, 21], [20, 20, 20, 19], [55, 55, 55, 55], [56, 56, 56, 56], [119, 119, 119, 119], [120, 120, 120, 120], [64, 64, 64, 0]]) {
      const msgs = lens.map((n) => nodeCrypto.randomBytes(n));
      initSync({ build });
      const got = hashMany('SHA-256', msgs);
      msgs.forEach((m, i) => expect(Buffer.from(got[i]!).equals(nodeCrypto.createHash('sha256').update(m).digest()), `${build}: lengths ${lens}, message ${i}`).toBe(true));
    }
  });
});

describe('HMAC_DRBG limits at the ABI (SP 800-90A table 2, docs/wasm-abi-drbg.md)', () => {
  beforeEach(() => void initSync()); // the best build (a test above may have left another loaded)
  it('reseed interval 1 .. 2^48, entropy >= 32, nonce >= 16, request <= 65536, instantiate once, the interval counted exactly', () => {
    const c = core(), x = c.x, io = c.io;
    c.mem().set(nodeCrypto.randomBytes(64), io);
    const ctx = x.drbg_create(4);
    expect(x.drbg_set_reseed_interval(ctx, 0n)).toBe(ERR_LENGTH);
    expect(x.drbg_set_reseed_interval(ctx, (1n << 48n) + 1n)).toBe(ERR_LENGTH);
    expect(x.drbg_set_reseed_interval(ctx, 1n << 48n)).toBe(0);
    expect(x.drbg_reseed(ctx, io, 32, io, 0), 'reseed before instantiate').toBe(ERR_STATE);
    expect(x.drbg_generate(ctx, io + 1024, 16, io, 0), 'generate before instantiate').toBe(ERR_STATE);
    expect(x.drbg_instantiate(ctx, io, 31, io + 32, 16, io, 0)).toBe(ERR_LENGTH);
    expect(x.drbg_instantiate(ctx, io, 32, io + 32, 15, io, 0)).toBe(ERR_LENGTH);
    expect(x.drbg_instantiate(ctx, io, 32, io + 32, 16, io, 0)).toBe(0);
    expect(x.drbg_instantiate(ctx, io, 32, io + 32, 16, io, 0), 'instantiate twice').toBe(ERR_STATE);
    expect(x.drbg_reseed(ctx, io, 31, io, 0)).toBe(ERR_LENGTH);
    // The request limit itself, into a block that holds it (a range past the I/O window is refused anyway).
    const big = x.mem_alloc(65537);
    expect(x.drbg_generate(ctx, big, 65537, io, 0), 'a request of 65537 bytes').toBe(ERR_LENGTH);
    expect(x.drbg_generate(ctx, big, 65536, io, 0), 'a request of 65536 bytes').toBe(0);
    x.mem_free(big, 65537);
    expect(x.drbg_set_reseed_interval(ctx, 3n)).toBe(0);
    expect(x.drbg_generate(ctx, io + 1024, 16, io, 0)).toBe(0);
    expect(x.drbg_generate(ctx, io + 1024, 16, io, 0)).toBe(0);
    expect(x.drbg_generate(ctx, io + 1024, 16, io, 0), 'the fourth request after instantiate').toBe(ERR_STATE);
    expect(x.drbg_reseed(ctx, io, 32, io, 0)).toBe(0);
    for (let i = 0; i < 3; i++) expect(x.drbg_generate(ctx, io + 1024, 16, io, 0), `request ${i + 1} after reseed`).toBe(0);
    expect(x.drbg_generate(ctx, io + 1024, 16, io, 0)).toBe(ERR_STATE);
    x.ctx_free(ctx);
  });
});

describe('ECDSA verification edges (FIPS 186-5 6.4.2)', () => {
  beforeEach(() => void initSync()); // the best build (a test above may have left another loaded)
  // P-256 group order and the modular arithmetic to build inputs with.
  const n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
  const be = (v: bigint, len = 32) => Uint8Array.from(Buffer.from(v.toString(16).padStart(2 * len, '0'), 'hex'));
  const mod = (v: bigint) => ((v % n) + n) % n;

  it('u1 G + u2 Q = O (the point at infinity) is an invalid signature, for any s', () => {
    const e = ecdsa('P-256');
    const d = 0x1234567890abcdefn * 0xfedcba0987654321n + 7n;
    const publicKey = e.getPublicKey(be(d));
    for (const r of [1n, 2n, n - 1n, 0x5555n << 200n]) {
      const digest = be(mod(-r * d)); // e = -r d: e/s + (r/s) d = 0
      for (const s of [1n, 3n, n - 1n]) {
        const sig = Uint8Array.from([...be(r), ...be(s)]);
        expect(e.verify(sig, digest, publicKey, { prehashed: true, format: 'raw' }), `r ${r}, s ${s}`).toBe(false);
      }
    }
  });

  it('signing a digest not below n (e = bits2int(h) is reduced mod n) gives the RFC 6979 signature @noble/curves gives', () => {
    for (const [curve, noble, L] of [['P-256', p256, 32], ['P-384', p384, 48]] as const) {
      const e = ecdsa(curve);
      const sk = nodeCrypto.randomBytes(L);
      sk[0] = 1;
      // All ones, and n itself (bits2int(h) = n reduces to 0).
      const order = curve === 'P-256' ? 'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551' : 'ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973';
      for (const digest of [new Uint8Array(L).fill(0xff), Uint8Array.from(Buffer.from(order, 'hex'))]) {
        const hashName = curve === 'P-256' ? 'SHA-256' : 'SHA-384';
        const sig = e.sign(digest, sk, { prehashed: true, hash: hashName, format: 'raw', extraEntropy: false });
        const expected = noble.sign(digest, sk, { prehash: false, lowS: false, extraEntropy: false, format: 'compact' });
        expect(Buffer.from(sig).toString('hex'), `${curve}, digest ${Buffer.from(digest).toString('hex')}`).toBe(Buffer.from(expected).toString('hex'));
      }
    }
  });

  it('ec_verify and ec_sign: a digest of 0 or more than 64 bytes is ERR_LENGTH', () => {
    const c = core(), x = c.x, io = c.io;
    const e = ecdsa('P-256');
    const sk = nodeCrypto.randomBytes(32);
    sk[0] = 1;
    const pk = e.getPublicKey(sk);
    c.mem().set(sk, io);
    c.mem().set(pk, io + 64);
    c.mem().set(nodeCrypto.randomBytes(80), io + 256);
    for (const len of [0, 65, 66]) {
      expect(x.ec_verify(256, io + 64, 65, io + 256, len, io + 512), `verify, ${len}-byte digest`).toBe(ERR_LENGTH);
      expect(x.ec_sign(256, 4, io, io + 256, len, io, 0, io + 512), `sign, ${len}-byte digest`).toBe(ERR_LENGTH);
    }
    expect(x.ec_sign(256, 4, io, io + 256, 64, io, 0, io + 512)).toBe(64);
    x.zeroize(io, 1024);
  });
});
