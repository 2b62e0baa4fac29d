// Security of the page and the loader: a strict CSP on the demo, models only from the page's
// origin or a configured one, manifests that cannot point outside their folder, and models
// too large for the GPU refused before a byte of weights is downloaded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve, launchBrowser, openPage, tinyModel } from './harness.mjs';

let server, browser, page, log, models;
const requests = [];
const modelRequests = () => requests.filter((r) => r.startsWith('/models/'));
// A same-origin script (allowed by script-src 'self') that tries to eval.
const EVAL_PROBE = "try { window.__eval = String(new Function('return 1')()); } catch (e) { window.__eval = e.name; }";

/** A copy of the tiny model's manifest (and tokenizer) with `edit` applied, served as `name`. */
function variant(name, edit) {
  const dir = join(models, name);
  mkdirSync(dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(models, 'tiny', 'manifest.json'), 'utf8'));
  edit(manifest);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  copyFileSync(join(models, 'tiny', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  return `/models/${name}/manifest.json`;
}

before(async () => {
  models = tinyModel(['--seed', '3']);
  const onRequest = (req, res) => {
    requests.push(req.url);
    if (req.url !== '/eval-probe.js') return false;
    res.writeHead(200, { 'content-type': 'text/javascript' }).end(EVAL_PROBE);
    return true;
  };
  server = await serve({ mounts: { '/models/': models }, onRequest, cors: true });
  browser = await launchBrowser();
  // A model URL that does not exist: the demo finds no model and stays idle, out of the
  // request log the tests read.
  ({ page, log } = await openPage(browser, `${server.url}/demo/?model=/models/absent/manifest.json`));
  await page.waitForSelector('body[data-state=ready]', { timeout: 120_000 });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** `Fusion.load(url, options)` in the page: 'loaded' or the error message. */
const load = (url, options = {}) =>
  page.evaluate(
    async ({ url, options }) => {
      const { Fusion } = await import('/src/index.js');
      try {
        const model = await Fusion.load(url, options);
        model.unload();
        return 'loaded';
      } catch (e) {
        return `error: ${e.message}`;
      }
    },
    { url, options },
  );

test('the demo page ships a strict Content-Security-Policy, and it holds', async () => {
  const csp = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval';/);
  assert.doesNotMatch(csp, /unsafe-inline|'unsafe-eval'|\*/);
  const inline = await page.evaluate(
    () =>
      new Promise((done) => {
        document.addEventListener('securitypolicyviolation', (e) => done(`blocked by ${e.violatedDirective}`), { once: true });
        const s = document.createElement('script');
        s.textContent = 'window.__inlineRan = true';
        document.head.append(s);
        setTimeout(() => done(window.__inlineRan ? 'ran' : 'no report'), 2000);
      }),
  );
  assert.match(inline, /^blocked by script-src/);
  const evaluated = await page.evaluate(
    () =>
      new Promise((done) => {
        const s = document.createElement('script');
        s.src = '/eval-probe.js';
        s.onload = () => done(window.__eval);
        s.onerror = () => done('probe not loaded');
        document.head.append(s);
      }),
  );
  assert.equal(evaluated, 'EvalError');
});

test('a model on another origin is refused before any request, unless that origin is allowed', async () => {
  const other = server.url.replace('127.0.0.1', 'localhost');
  const url = `${other}/models/tiny/manifest.json`;
  requests.length = 0;
  const refused = await load(url);
  assert.match(refused, /^error: .*only from this page's origin .* allowedOrigins/);
  assert.deepEqual(modelRequests(), []);
  assert.equal(await load(url, { allowedOrigins: [new URL(other).origin] }), 'loaded', log.join('\n'));
});

test('a model used after unload() fails at once instead of waiting forever', { timeout: 120_000 }, async () => {
  const message = await page.evaluate(async () => {
    const { Fusion } = await import('/src/index.js');
    const model = await Fusion.load('/models/tiny/manifest.json');
    model.unload();
    try {
      for await (const _ of model.ask({ image: new OffscreenCanvas(8, 8), question: 'Hello?' }));
      return 'answered';
    } catch (e) {
      return e.message;
    }
  });
  assert.match(message, /unloaded/);
});

test('a manifest that names files outside its folder is refused before they are fetched', async () => {
  for (const [name, edit, needle] of [
    ['elsewhere', (m) => (m.shards[0].file = `${server.url}/models/tiny/${m.shards[0].file}`), /shard name .* leaves the model folder/],
    ['up', (m) => (m.shards[0].file = '..'), /leaves the model folder/],
    ['tok', (m) => (m.tokenizer = '../tiny/tokenizer.json'), /tokenizer name .* leaves the model folder/],
  ]) {
    const url = variant(name, edit);
    requests.length = 0;
    const result = await load(url);
    assert.match(result, needle, name);
    assert.deepEqual(modelRequests(), [url], `${name}: only the manifest was fetched`);
  }
});

test('a model larger than the GPU can bind is refused before any download', async () => {
  const url = variant('huge', (m) => {
    // A 16 GiB embedding table: past every adapter's maxStorageBufferBindingSize.
    const bytes = 2 ** 34;
    m.shards[0].bytes = bytes;
    const t = m.tensors.find((t) => t.dtype === 'f16');
    t.data = [{ shard: 0, offset: 0, bytes }];
  });
  requests.length = 0;
  const result = await load(url);
  assert.match(result, /^error: the model has a 17179869184-byte tensor; this GPU binds at most \d+ bytes/);
  assert.ok(!modelRequests().some((r) => r.endsWith('.bin')), `no shard was requested: ${modelRequests()}`);
});
