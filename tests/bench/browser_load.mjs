// How long a model takes to load in the browser, from the network and then from the offline
// copy (OPFS), split into the cache's part (download and sha256 checks) and the upload to the
// GPU. A benchmark, not a test: `node tests/bench/browser_load.mjs [--large] [--out FILE]`,
// run from tests/browser's dependencies (Chromium on SwiftShader, as the browser tests).
// `--large`: the ≈ 1.2 GB LLaMA-shaped model of tests/browser/memory.test.mjs (2.4 GB of disk).
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
  const loads = await page
    .evaluate(async () => {
      const { Fusion } = await import('/src/index.js');
      const runs = [];
      for (const from of ['network', 'offline copy', 'offline copy']) {
        const t0 = performance.now();
        const model = await Fusion.load('/models/model/manifest.json');
        const { bytes, hashedBytes, downloadMs, uploadMs } = model.info;
        runs.push({ from, bytes, hashedBytes, totalMs: performance.now() - t0, cacheMs: downloadMs, uploadMs });
        model.unload();
      }
      return runs;
    })
    .catch((e) => {
      throw new Error(`${e}\n${log.join('\n')}`);
    });
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
  for (const l of loads) {
    console.log(`${l.from}: ${mb(l.bytes)} in ${s(l.totalMs)}; the offline copy made whole and checked in ${s(l.cacheMs)} (${mb(l.hashedBytes)} hashed), uploaded in ${s(l.uploadMs)} (${(l.bytes / 1e3 / l.uploadMs).toFixed(1)} MB/s)`);
  }
  if (out) writeFileSync(out, JSON.stringify({ chromium: browser.browser()?.version() ?? null, loads }, null, 1));
} finally {
  await browser.close();
  await server.close();
}
