import { ecdsa, initSync } from './dist/src/index.js';
import nodeCrypto from 'node:crypto';
import { p256, p384, p521 } from '@noble/curves/nist.js';
const cpu = (fn, n) => { for (let i = 0; i < Math.max(3, n / 5); i++) fn(); let best = 1e9; for (let r = 0; r < 7; r++) { const t = process.cpuUsage(); for (let i = 0; i < n; i++) fn(); const u = process.cpuUsage(t); best = Math.min(best, (u.user + u.system) / n); } return best; };
const build = process.argv[2] ?? 'simd';
initSync({ build });
const msg = new Uint8Array(100).fill(5);
for (const [name, noble, h, N] of [['P-256', p256, 'sha256', 400], ['P-384', p384, 'sha384', 150], ['P-521', p521, 'sha512', 60]]) {
  const e = ecdsa(name);
  const { secretKey, publicKey } = e.keygen();
  const sig = e.sign(msg, secretKey);
  const keys = nodeCrypto.generateKeyPairSync('ec', { namedCurve: name });
  const nsig = nodeCrypto.sign(h, msg, keys.privateKey);
  const bsk = noble.utils.randomSecretKey(), bpk = noble.getPublicKey(bsk), bsig = noble.sign(msg, bsk);
  const r = {
    keygen: [cpu(() => e.keygen(), N), cpu(() => nodeCrypto.generateKeyPairSync('ec', { namedCurve: name }), N), cpu(() => noble.getPublicKey(noble.utils.randomSecretKey()), N / 4)],
    sign: [cpu(() => e.sign(msg, secretKey), N), cpu(() => nodeCrypto.sign(h, msg, keys.privateKey), N), cpu(() => noble.sign(msg, bsk, { extraEntropy: true }), N / 4)],
    verify: [cpu(() => e.verify(sig, msg, publicKey), N / 2), cpu(() => nodeCrypto.verify(h, msg, keys.publicKey, nsig), N / 2), cpu(() => noble.verify(bsig, msg, bpk), N / 10)],
  };
  for (const [op, [s, nd, nb]] of Object.entries(r)) console.log(`${name} ${op.padEnd(6)} senv ${s.toFixed(0).padStart(5)} us | node ${nd.toFixed(0).padStart(5)} us | noble ${nb.toFixed(0).padStart(6)} us | senv/node ${(nd / s).toFixed(2)}x senv/noble ${(nb / s).toFixed(2)}x`);
}
