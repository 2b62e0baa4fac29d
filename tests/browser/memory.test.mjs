// Weights stream from the offline cache into GPU buffers 4 MiB at a time: loading a model of
// more than 1 GB of int4 shards keeps the JS memory of the page and of the worker the shards pass
// through (V8 heaps and ArrayBuffers, sampled through the DevTools protocol) and the wasm memory
// under 512 MB, and the wasm memory alone under 128 MiB (what it needs does not grow with the
// model).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve, launchBrowser, openPage, fusionCli, scratch, sampleHeaps } from './harness.mjs';

const LIMIT = 512 * 2 ** 20;
const WASM_LIMIT = 128 * 2 ** 20;
let server, browser, models;

before(async () => {
  models = scratch('large');
  execFileSync(fusionCli, ['tiny', join(models, 'large'), '--backbone', 'llama', '--large']);
  writeFileSync(join(models, 'blank.html'), '<!doctype html><title>memory</title>');
  server = await serve({ mounts: { '/models/': models } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('loading a 1 GB model keeps JS memory + wasm memory under 512 MB', async () => {
  const { page, log } = await openPage(browser, `${server.url}/models/blank.html`);
  const heaps = await sampleHeaps(browser, page);
  const r = await page
    .evaluate(async () => {
      const { Fusion } = await import('/src/index.js');
      window.model = await Fusion.load('/models/large/manifest.json');
      return { bytes: model.info.bytes, memory: model.info.memory };
    })
    .catch((e) => assert.fail(`${e}\n${log.join('\n')}`));
  const js = await heaps.stop();
  await page.evaluate(() => window.model.unload());
  assert.ok(r.bytes >= 1e9, `the model has only ${r.bytes} bytes`);
  // Measured, not assumed: the worker ran and was sampled all through the load (≈ 20 s).
  assert.ok(js.workers >= 1 && js.samples >= 100 && js.workerPeakBytes > 0, `the worker was not sampled: ${JSON.stringify(js)}`);
  const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
  console.log(
    `1 GB model: page JS peak ${mib(js.pagePeakBytes)} MiB, worker JS peak ${mib(js.workerPeakBytes)} MiB (${js.samples} samples), wasm ${mib(r.memory.wasmBytes)} MiB`,
  );
  const total = js.pagePeakBytes + js.workerPeakBytes + r.memory.wasmBytes;
  assert.ok(total < LIMIT, `${mib(total)} MiB ≥ 512 MiB: ${JSON.stringify({ ...r, js })}`);
  assert.ok(r.memory.wasmBytes < WASM_LIMIT, `wasm memory ${mib(r.memory.wasmBytes)} MiB ≥ 128 MiB: weights are held in wasm`);
});
