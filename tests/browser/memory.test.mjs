// Weights stream from the offline cache into GPU buffers 4 MiB at a time: loading a model of
// more than 1 GB of int4 shards keeps the JS heaps and the wasm memory under 512 MB, and the
// wasm memory alone under 128 MiB (what it needs does not grow with the model).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve, launchBrowser, openPage, fusionCli, scratch } from './harness.mjs';

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

test('loading a 1 GB model keeps JS heap + wasm memory under 512 MB', async () => {
  const { page, log } = await openPage(browser, `${server.url}/models/blank.html`);
  const r = await page
    .evaluate(async () => {
      const { Fusion } = await import('/src/index.js');
      let pageHeapPeak = performance.memory.usedJSHeapSize;
      const sample = () => (pageHeapPeak = Math.max(pageHeapPeak, performance.memory.usedJSHeapSize));
      const model = await Fusion.load('/models/large/manifest.json', { onProgress: sample });
      sample();
      const info = model.info;
      model.unload();
      return { bytes: info.bytes, memory: info.memory, pageHeapPeak };
    })
    .catch((e) => assert.fail(`${e}\n${log.join('\n')}`));
  assert.ok(r.bytes >= 1e9, `the model has only ${r.bytes} bytes`);
  const total = r.pageHeapPeak + r.memory.wasmBytes + (r.memory.workerHeapBytes ?? 0);
  console.log(
    `1 GB model: page heap peak ${(r.pageHeapPeak / 2 ** 20).toFixed(1)} MiB, wasm ${(r.memory.wasmBytes / 2 ** 20).toFixed(1)} MiB, worker heap ${r.memory.workerHeapBytes === null ? 'n/a' : (r.memory.workerHeapBytes / 2 ** 20).toFixed(1) + ' MiB'}`,
  );
  assert.ok(total < LIMIT, `${(total / 2 ** 20).toFixed(1)} MiB ≥ 512 MiB: ${JSON.stringify(r)}`);
  assert.ok(
    r.memory.wasmBytes < WASM_LIMIT,
    `wasm memory ${(r.memory.wasmBytes / 2 ** 20).toFixed(1)} MiB ≥ 128 MiB: weights are held in wasm`,
  );
});
