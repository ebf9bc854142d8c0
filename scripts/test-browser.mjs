// Runs the portable suites in headless Chromium: Vite bundles
// test/browser/entry.ts (the bundler path), a loopback server serves it with
// the vectors, and a second page imports dist/ as plain unbundled ESM.
// Exit code 0 only when every case passed on both core builds.
import { createServer } from 'node:http';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.error(`test-browser: ${CHROMIUM} not found; install the Debian package 'chromium' (scripts/setup-system.sh does it as root)`);
  process.exit(1);
}
if (!existsSync(join(root, 'dist/src/index.js'))) {
  console.error('test-browser: dist/ is missing; run npm run build first');
  process.exit(1);
}

const out = await mkdtemp(join(tmpdir(), 'senv-browser-'));
await build({
  root,
  logLevel: 'warn',
  configFile: false,
  build: {
    outDir: out,
    emptyOutDir: true,
    minify: false,
    lib: { entry: join(root, 'test/browser/entry.ts'), formats: ['es'], fileName: 'entry' },
  },
});

const PAGES = {
  '/bundled.html': '<!doctype html><script type="module" src="/bundle/entry.js"></script>',
  // Plain ESM, no bundler: the published dist/ files straight from the server;
  // sha256 before any init() exercises the synchronous lazy load on the main thread.
  '/plain.html': `<!doctype html><script type="module">
    import * as senv from '/dist/src/index.js';
    const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    let lazy;
    try { lazy = hex(senv.sha256(new TextEncoder().encode('abc'))); } catch (e) { lazy = 'error: ' + e.message; }
    const info = await senv.init();
    window.plainResult = { lazy, build: info.build, abc: hex(senv.sha256(new TextEncoder().encode('abc'))) };
  </script>`,
  // Under a strict Content Security Policy (no inline script, no eval): the lazy load, init(), and a
  // core fetched from its URL and handed over compiled; without 'wasm-unsafe-eval', a CoreError.
  '/csp.html': '<!doctype html><script type="module" src="/csp.js"></script>',
  '/no-wasm-csp.html': '<!doctype html><script type="module" src="/csp.js"></script>',
  '/csp.js': `import * as senv from '/dist/src/index.js';
    const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    const abc = () => hex(senv.sha256(new TextEncoder().encode('abc')));
    const outcome = async (f) => { try { return await f(); } catch (e) { return e.name + ': ' + e.message; } };
    window.cspResult = {
      lazy: await outcome(abc),
      init: await outcome(async () => (await senv.init()).build + ' ' + abc()),
      module: await outcome(async () => (await senv.init({ module: await WebAssembly.compileStreaming(fetch('/build/senv.scalar.wasm')) })).build + ' ' + abc()),
    };`,
};
const CSP = {
  '/csp.html': "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'",
  '/no-wasm-csp.html': "default-src 'self'; script-src 'self'",
};
const TYPES = { '.js': 'text/javascript', '.map': 'application/json', '.html': 'text/html', '.json': 'application/json', '.wasm': 'application/wasm' };

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  try {
    if (PAGES[url.pathname]) {
      const csp = CSP[url.pathname] ? { 'content-security-policy': CSP[url.pathname] } : {};
      res.writeHead(200, { 'content-type': url.pathname.endsWith('.js') ? 'text/javascript' : 'text/html', ...csp }).end(PAGES[url.pathname]);
      return;
    }
    const [, top, ...rest] = url.pathname.split('/');
    const base = { bundle: out, vectors: join(root, 'test/vectors'), dist: join(root, 'dist'), build: join(root, 'build') }[top];
    const file = base && normalize(join(base, ...rest));
    if (!file || !file.startsWith(base)) throw new Error('not found');
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'text/plain' }).end(await readFile(file));
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
let failed = 0;
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  console.log(`Chromium ${browser.version()}`);

  await page.goto(`${origin}/plain.html`);
  const plain = await page.waitForFunction(() => window.plainResult, null, { timeout: 60_000 }).then((h) => h.jsonValue());
  const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
  const plainOk = plain.abc === abc && plain.lazy === abc;
  console.log(`${plainOk ? 'ok  ' : 'FAIL'} plain ESM import of dist/ (lazy sync load: ${plain.lazy === abc ? 'ok' : plain.lazy}; init() chose ${plain.build})`);
  if (!plainOk) failed++;

  await page.goto(`${origin}/csp.html`);
  const csp = await page.waitForFunction(() => window.cspResult, null, { timeout: 60_000 }).then((h) => h.jsonValue());
  const cspOk = csp.lazy === abc && csp.init === `relaxed ${abc}` && csp.module === `scalar ${abc}`;
  console.log(`${cspOk ? 'ok  ' : 'FAIL'} script-src 'self' 'wasm-unsafe-eval': lazy load, init(), init({ module }) from a URL (${cspOk ? 'all ok' : JSON.stringify(csp)})`);
  if (!cspOk) failed++;
  await page.goto(`${origin}/no-wasm-csp.html`);
  const noWasm = await page.waitForFunction(() => window.cspResult, null, { timeout: 60_000 }).then((h) => h.jsonValue());
  const refused = (r) => r.startsWith('CoreError: WASM compilation failed') && r.includes("needs 'wasm-unsafe-eval'");
  const noWasmOk = refused(noWasm.lazy) && refused(noWasm.init);
  console.log(`${noWasmOk ? 'ok  ' : 'FAIL'} script-src 'self' alone: a CoreError from the lazy load and from init() (${noWasmOk ? 'both' : JSON.stringify(noWasm)})`);
  if (!noWasmOk) failed++;

  await page.goto(`${origin}/bundled.html`);
  await page.waitForFunction(() => typeof window.senvRun === 'function', null, { timeout: 60_000 });
  const plan = await page.evaluate(() => window.senvPlan());
  const results = await page.evaluate(() => window.senvRun());
  // A run that lost cases or builds must not pass: Chromium takes all three builds.
  const complete = plan.builds.join() === 'relaxed,simd,scalar' && results.length === plan.cases * plan.builds.length;
  console.log(`${complete ? 'ok  ' : 'FAIL'} ${results.length} results for ${plan.cases} cases on ${plan.builds.join(', ')}`);
  if (!complete) failed++;
  for (const r of results) {
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.build.padEnd(6)} ${r.suite}: ${r.name} (${r.ms.toFixed(0)} ms)`);
    if (!r.ok) {
      failed++;
      console.log(`     ${r.error}`);
    }
  }
  console.log(`\nChromium: ${results.length + 4 - failed} passed, ${failed} failed`);
} finally {
  await browser.close();
  server.close();
  await rm(out, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
