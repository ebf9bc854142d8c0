import { initSync, sha256, sha512 } from '/work/main/dist/src/index.js';
import { createSHA256, createSHA512 } from 'hash-wasm';
const data = new Uint8Array(1 << 20).fill(3);
const hw = await createSHA256(); const hw5 = await createSHA512();
initSync({ build: process.argv[2] || 'simd' });
const fns = {
  hw256: () => { hw.init(); hw.update(data); return hw.digest('binary'); },
  s256: () => sha256(data),
  hw512: () => { hw5.init(); hw5.update(data); return hw5.digest('binary'); },
  s512: () => sha512(data),
};
const times = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
for (let i = 0; i < 10; i++) for (const f of Object.values(fns)) f();
for (let rep = 0; rep < 40; rep++) for (const [k, f] of Object.entries(fns)) { const t0 = performance.now(); f(); f(); times[k].push(performance.now() - t0); }
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, med(v)]));
console.log(Object.entries(m).map(([k, v]) => `${k} ${(2 / v * 1000).toFixed(0)} MB/s`).join(' | '), `| 256 ${(m.hw256 / m.s256).toFixed(3)}x 512 ${(m.hw512 / m.s512).toFixed(3)}x`);
