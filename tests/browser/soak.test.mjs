// Soak: one page session asks about a photo, then keeps the conversation going for
// FUSION_SOAK_TURNS turns (64 by default) with the tiny model. Its context of 2000 positions
// first fills after ≈ 18 follow-ups (the photo's turn takes ≈ 1200), then again every few as the
// context policy drops old follow-ups and rebuilds the KV cache (one prefill of the turns kept,
// ≈ 8 s on SwiftShader against ≈ 1.2 s for a follow-up). The GPU memory the engine uses, its
// wasm memory and the page's JS heap must stay flat: their Theil–Sen slope over the turns after
// the first rebuild (a steady leak moves it, a one-time step does not) stays under a bound.
// Figures in RELIABILITY.md.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launchBrowser, openPage, tinyModel } from './harness.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const TURNS = Number(process.env.FUSION_SOAK_TURNS ?? 64);

let server, browser, page, log;

before(async () => {
  const models = tinyModel(['--backbone', 'llama', '--seed', '5', '--context', '2000']);
  server = await serve({ mounts: { '/models/': models, '/photos/': join(repo, 'tests', 'photos') } });
  browser = await launchBrowser();
  ({ page, log } = await openPage(browser, `${server.url}/demo/?model=/models/absent/manifest.json`));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const median = (xs) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Theil–Sen slope of `ys` against their index: the median of the pairwise slopes. */
function slope(ys) {
  const s = [];
  for (let i = 0; i < ys.length; i++) for (let j = i + 1; j < ys.length; j++) s.push((ys[j] - ys[i]) / (j - i));
  s.sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

test(`${TURNS} turns in one page keep GPU memory, wasm memory and the JS heap flat`, async () => {
  const r = await page
    .evaluate(async (turns) => {
      const { Fusion } = await import('/src/index.js');
      const fusion = await Fusion.load('/models/tiny/manifest.json');
      const image = await (await fetch('/photos/rgb8.png')).blob();
      const history = [];
      const samples = { gpu: [], wasm: [], page: [], promptTokens: [], dropped: [], rebuilt: [], ms: [] };
      const t0 = performance.now();
      for (let i = 0; i < turns; i++) {
        const question = i === 0 ? 'What is in this photo?' : `What else, part ${i}?`;
        let text = '';
        for await (const piece of fusion.ask({ image, question, history, maxNewTokens: 2 })) text += piece;
        history.push([question, text]);
        const s = fusion.stats().lastAnswer;
        samples.gpu.push(s.gpuBytesInUse / 1e6);
        samples.wasm.push(s.wasmBytes / 1e6);
        samples.page.push(performance.memory.usedJSHeapSize / 1e6);
        samples.promptTokens.push(s.promptTokens);
        samples.dropped.push(s.droppedTurns);
        samples.rebuilt.push(s.rebuilt);
        samples.ms.push(s.totalMs);
      }
      const seconds = (performance.now() - t0) / 1000;
      const photos = fusion.stats().photosEncoded;
      await fusion.unload();
      return { samples, seconds, photos };
    }, TURNS)
    .catch((e) => assert.fail(`${e}\n${log.join('\n')}`));
  assert.ok(Math.min(...r.samples.promptTokens.slice(1)) > 0);
  // Dropping turns rebuilds the conversation's KV cache (one prefill of the turns kept); the
  // allocator's pools settle with that first rebuild's buffers.
  const rebuilds = r.samples.dropped.map((n, i) => i > 0 && n > r.samples.dropped[i - 1]);
  // Every other turn prefilled only its own turn.
  assert.deepEqual(r.samples.rebuilt, rebuilds, 'a turn was rebuilt without dropping any, or the other way round');
  const rebuilt = rebuilds.indexOf(true);
  const dropped = r.samples.dropped.at(-1);
  assert.ok(rebuilt > 0, `the soak never crossed the context (${dropped} turns dropped)`);
  const settled = rebuilt + 1;
  assert.ok(TURNS - settled >= 30, `only ${TURNS - settled} turns after the first rebuild (turn ${rebuilt}) to fit a slope to`);
  const stats = Object.fromEntries(
    ['gpu', 'wasm', 'page'].map((k) => {
      const ys = r.samples[k].slice(settled);
      return [k, { min: Math.min(...ys), max: Math.max(...ys), slope: slope(ys) }];
    }),
  );
  const shown = Object.entries(stats).map(
    ([k, s]) => `${k} ${s.min.toFixed(1)}–${s.max.toFixed(1)} MB, slope ${s.slope >= 0 ? '+' : ''}${s.slope.toFixed(4)} MB/turn`,
  );
  const turnMs = (rebuild) => median(r.samples.ms.filter((_, i) => i > 0 && rebuilds[i] === rebuild)).toFixed(0);
  console.log(
    `soak in the browser: ${TURNS} turns in ${r.seconds.toFixed(0)} s (a follow-up ${turnMs(false)} ms, a rebuild ${turnMs(true)} ms), ${r.photos} photo encoding(s), ${dropped} follow-ups dropped in ${rebuilds.filter(Boolean).length} rebuilds from turn ${rebuilt}; ${shown.join('; ')}`,
  );
  assert.equal(r.photos, 1, 'follow-ups must reuse the photo');
  // Bounds: a leak of one KV cache row per layer per turn would be 0.01 MB/turn on the GPU; a
  // history of short turns adds ≈ 0.001 MB/turn to the heaps legitimately.
  assert.ok(stats.gpu.slope < 0.005, shown[0]);
  assert.ok(stats.wasm.slope < 0.01, shown[1]);
  assert.ok(stats.page.slope < 0.05, shown[2]);
});
