import { initSync, sha256, sha512 } from '/work/main/dist/src/index.js';
import { createSHA256, createSHA512 } from 'hash-wasm';
const data = new Uint8Array(1 << 20).fill(3);
const hw = await createSHA256(); const hw5 = await createSHA512();
const builds = process.argv[2] ? [process.argv[2]] : ['simd', 'scalar'];
function rate(fn) { for (let i = 0; i < 5; i++) fn(); const t0 = performance.now(); let n = 0; while (performance.now() - t0 < 300) { fn(); n++; } return n / (performance.now() - t0) * 1000; }
for (let rep = 0; rep < 3; rep++) {
  const h = rate(() => { hw.init(); hw.update(data); return hw.digest('binary'); });
  const h5 = rate(() => { hw5.init(); hw5.update(data); return hw5.digest('binary'); });
  let line = `hash-wasm256 ${h.toFixed(0)} /s 512 ${h5.toFixed(0)}`;
  for (const b of builds) { initSync({ build: b }); const s = rate(() => sha256(data)); const s5 = rate(() => sha512(data)); line += ` | ${b} 256 ${(s / h).toFixed(3)}x 512 ${(s5 / h5).toFixed(3)}x`; }
  console.log(line);
}
