// What a user waits for in the browser: loading a model, from the network and then from the
// offline copy (OPFS), split into the cache's part (download and sha256 checks) and the upload
// to the GPU; then two answers about a photo (the first compiles the pipelines), split into
// the vision tower, prefill, first token and decode speed. A benchmark, not a test:
// `node tests/bench/browser.mjs [--large] [--out FILE]`, run from tests/browser's dependencies
// (Chromium on SwiftShader, as the browser tests). `--large`: the ≈ 1.2 GB LLaMA-shaped model of
// tests/browser/memory.test.mjs (2.4 GB of disk), loads only.
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
const report = { chromium: browser.browser()?.version() ?? null, loads: [], answers: [] };
const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
// Each load and answer is printed, and the report rewritten, as soon as it is measured.
const record = (list, entry, line) => {
  report[list].push(entry);
  console.log(line);
  if (out) writeFileSync(out, JSON.stringify(report, null, 1));
};
try {
  const { page, log } = await openPage(browser, `${server.url}/models/blank.html`);
  const inPage = (fn, arg) =>
    page.evaluate(fn, arg).catch((e) => {
      throw new Error(`${e}\n${log.join('\n')}`);
    });
  for (const from of ['network', 'offline copy', 'offline copy']) {
    const l = await inPage(async (from) => {
      const { Fusion } = await import('/src/index.js');
      globalThis.model?.unload();
      const t0 = performance.now();
      globalThis.model = await Fusion.load('/models/model/manifest.json');
      const { bytes, hashedBytes, downloadMs, uploadMs } = globalThis.model.info;
      return { from, bytes, hashedBytes, totalMs: performance.now() - t0, cacheMs: downloadMs, uploadMs };
    }, from);
    record(
      'loads',
      l,
      `${l.from}: ${mb(l.bytes)} in ${s(l.totalMs)}; the offline copy made whole and checked in ${s(l.cacheMs)} (${mb(l.hashedBytes)} hashed), uploaded in ${s(l.uploadMs)} (${(l.bytes / 1e3 / l.uploadMs).toFixed(1)} MB/s)`,
    );
  }
  // The large model's answers are left out: on SwiftShader one takes over 20 minutes of CPU,
  // which measures SwiftShader, not the engine.
  for (const run of large ? [] : ['first (compiles pipelines)', 'second']) {
    const a = await inPage(async (run) => {
      // A synthetic photo, as a canvas: the figures are the engine's, not an image decoder's.
      const image = new OffscreenCanvas(640, 480);
      const ctx = image.getContext('2d');
      ctx.fillStyle = ctx.createLinearGradient(0, 0, 640, 480);
      ctx.fillRect(0, 0, 640, 480);
      const { model } = globalThis;
      for await (const _ of model.ask({ image, question: 'What is in this photo?', maxNewTokens: 32 }));
      return { run, ...model.stats().lastAnswer, tokens: model.lastAnswer.tokens.length };
    }, run);
    record(
      'answers',
      a,
      `answer, ${a.run}: ${a.tokens} tokens; vision ${s(a.visionMs)}, prefill ${s(a.prefillMs)}, first token ${s(a.firstTokenMs)}, decode ${a.decodeTokensPerSecond?.toFixed(1)} tok/s (${a.decodePath}), total ${s(a.totalMs)}`,
    );
  }
  await inPage(() => globalThis.model.unload());
} finally {
  await browser.close();
  await server.close();
}
