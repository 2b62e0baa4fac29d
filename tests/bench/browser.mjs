// What a user waits for in the browser: loading a model, from the network and then from the
// offline copy (OPFS), split into the cache's part (download and sha256 checks) and the upload
// to the GPU; then two answers about a photo (the first compiles the pipelines), split into
// the vision tower, prefill, first token and decode speed. A benchmark, not a test:
// `node tests/bench/browser.mjs [--large] [--out FILE]`, run from tests/browser's dependencies
// (Chromium on SwiftShader, as the browser tests). `--large`: the ≈ 1.2 GB LLaMA-shaped model of
// tests/browser/memory.test.mjs (2.4 GB of disk).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve, launchBrowser, openPage, fusionCli, scratch } from '../browser/harness.mjs';

const args = process.argv.slice(2);
const large = args.includes('--large');
const out = args.includes('--out') ? args[args.indexOf('--out') + 1] : null;

const models = scratch('load');
if (large) {
  execFileSync(fusionCli, ['tiny', join(models, 'model'), '--backbone', 'llama', '--large']); // converted as made
} else {
  execFileSync(fusionCli, ['tiny', join(models, 'src'), '--backbone', 'llama']);
  execFileSync(fusionCli, ['convert', join(models, 'src'), join(models, 'model')]);
}
writeFileSync(join(models, 'blank.html'), '<!doctype html><title>load</title>');
const server = await serve({ mounts: { '/models/': models } });
const browser = await launchBrowser();
try {
  const { page, log } = await openPage(browser, `${server.url}/models/blank.html`);
  const { loads, answers } = await page
    .evaluate(async () => {
      const { Fusion } = await import('/src/index.js');
      const loads = [];
      let model = null;
      for (const from of ['network', 'offline copy', 'offline copy']) {
        model?.unload();
        const t0 = performance.now();
        model = await Fusion.load('/models/model/manifest.json');
        const { bytes, hashedBytes, downloadMs, uploadMs } = model.info;
        loads.push({ from, bytes, hashedBytes, totalMs: performance.now() - t0, cacheMs: downloadMs, uploadMs });
      }
      // A synthetic photo: the figures are the engine's, not a JPEG decoder's.
      const canvas = new OffscreenCanvas(640, 480);
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = ctx.createLinearGradient(0, 0, 640, 480);
      ctx.fillRect(0, 0, 640, 480);
      const image = await canvas.convertToBlob();
      const answers = [];
      for (const run of ['first (compiles pipelines)', 'second']) {
        for await (const _ of model.ask({ image, question: 'What is in this photo?', maxNewTokens: 32 }));
        answers.push({ run, ...model.stats().lastAnswer, tokens: model.lastAnswer.tokens.length });
      }
      model.unload();
      return { loads, answers };
    })
    .catch((e) => {
      throw new Error(`${e}\n${log.join('\n')}`);
    });
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
  for (const l of loads) {
    console.log(`${l.from}: ${mb(l.bytes)} in ${s(l.totalMs)}; the offline copy made whole and checked in ${s(l.cacheMs)} (${mb(l.hashedBytes)} hashed), uploaded in ${s(l.uploadMs)} (${(l.bytes / 1e3 / l.uploadMs).toFixed(1)} MB/s)`);
  }
  for (const a of answers) {
    console.log(`answer, ${a.run}: ${a.tokens} tokens; vision ${s(a.visionMs)}, prefill ${s(a.prefillMs)}, first token ${s(a.firstTokenMs)}, decode ${a.decodeTokensPerSecond?.toFixed(1)} tok/s (${a.decodePath}), total ${s(a.totalMs)}`);
  }
  if (out) writeFileSync(out, JSON.stringify({ chromium: browser.browser()?.version() ?? null, loads, answers }, null, 1));
} finally {
  await browser.close();
  await server.close();
}
