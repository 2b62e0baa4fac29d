// Photos in the encodings a browser may be handed (tests/photos/, made with Pillow from one
// photo): 16 bits per channel, 16-bit grayscale, CMYK JPEG, animated GIF/PNG/WebP. The
// browser's decoder, used the way the package uses it (createImageBitmap, then a canvas), must
// give (nearly) the 8-bit photo's pixels, the first frame of an animation; the engine answers
// about one of them end to end; a truncated file is refused with a clear error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launchBrowser, openPage, tinyModel } from './harness.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));

let server, browser, page, log;

before(async () => {
  const models = tinyModel(['--backbone', 'phi', '--seed', '3']);
  server = await serve({ mounts: { '/models/': models, '/photos/': join(repo, 'tests', 'photos') } });
  browser = await launchBrowser();
  // The demo page as an origin, pointed at no model so it loads nothing of its own.
  ({ page, log } = await openPage(browser, `${server.url}/demo/?model=/models/absent/manifest.json`));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

// The same tolerances as the native test (tests/fuzz.rs): mean absolute difference per channel.
// exif6.jpg and exif3.jpg: the photo stored turned, with the EXIF orientation that turns it back.
const ENCODINGS = {
  'rgb16.png': 1,
  'cmyk.jpg': 6,
  'animated.gif': 8,
  'animated.png': 0,
  'animated.webp': 8,
  'exif6.jpg': 3,
  'exif3.jpg': 3,
};

test('unusual encodings decode in the browser like the 8-bit photo', async () => {
  const r = await page.evaluate(async (names) => {
    // As web/src/index.js and worker.js do it.
    async function rgba(name) {
      const blob = await (await fetch(`/photos/${name}`)).blob();
      const bitmap = await createImageBitmap(blob, {
        colorSpaceConversion: 'none',
        premultiplyAlpha: 'none',
        imageOrientation: 'from-image',
      });
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = canvas.getContext('2d', { colorSpace: 'srgb', willReadFrequently: true });
      ctx.drawImage(bitmap, 0, 0);
      return { width: canvas.width, height: canvas.height, data: ctx.getImageData(0, 0, canvas.width, canvas.height).data };
    }
    const want = await rgba('rgb8.png');
    const meanAbs = (a, b, map = (i) => i) => {
      let sum = 0;
      let n = 0;
      for (let i = 0; i < b.length; i += 4) for (let c = 0; c < 3; c++, n++) sum += Math.abs(a[i + c] - map(b, i, c));
      return sum / n;
    };
    const out = {};
    for (const name of names) {
      const got = await rgba(name);
      out[name] = { size: [got.width, got.height], diff: meanAbs(got.data, want.data, (b, i, c) => b[i + c]) };
    }
    const gray = await rgba('gray16.png');
    const luma = (b, i) => Math.round((b[i] * 299 + b[i + 1] * 587 + b[i + 2] * 114) / 1000);
    out['gray16.png'] = { size: [gray.width, gray.height], diff: meanAbs(gray.data, want.data, luma) };
    return { want: [want.width, want.height], out };
  }, Object.keys(ENCODINGS));
  for (const [name, { size, diff }] of Object.entries(r.out)) {
    assert.deepEqual(size, r.want, name);
    assert.ok(diff <= (ENCODINGS[name] ?? 1), `${name}: mean absolute difference ${diff.toFixed(2)} from the 8-bit photo`);
  }
});

test('the engine answers about a CMYK photo and refuses truncated ones clearly', async () => {
  const r = await page.evaluate(async () => {
    const { Fusion } = await import('/src/index.js');
    const fusion = await Fusion.load('/models/tiny/manifest.json');
    let text = '';
    for await (const piece of fusion.ask({ image: '/photos/cmyk.jpg', question: 'Describe it.', maxNewTokens: 2 })) text += piece;
    const answer = fusion.lastAnswer;
    const png = new Uint8Array(await (await fetch('/photos/rgb16.png')).arrayBuffer());
    let error = null;
    try {
      for await (const _ of fusion.ask({
        image: new Blob([png.subarray(0, 300)], { type: 'image/png' }),
        question: 'Describe it.',
        maxNewTokens: 2,
      }));
    } catch (e) {
      error = e.message;
    }
    // A JPEG cut short: the browser would decode it (gray where bytes are missing); the package refuses it.
    const jpeg = new Uint8Array(await (await fetch('/photos/waterview.jpg')).arrayBuffer());
    let truncated = null;
    try {
      for await (const _ of fusion.ask({
        image: new Blob([jpeg.subarray(0, jpeg.length / 2)]),
        question: 'Describe it.',
        maxNewTokens: 1,
      }));
    } catch (e) {
      truncated = e.message;
    }
    // The model still answers after the refusals.
    let after = '';
    for await (const piece of fusion.ask({ image: '/photos/animated.gif', question: 'Describe it.', maxNewTokens: 1 })) after += piece;
    await fusion.unload();
    return { tokens: answer.tokens.length, photo: fusion.stats().photo, error, truncated, afterTokens: fusion.lastAnswer.tokens.length };
  });
  assert.ok(r.tokens > 0 && r.photo.tiles > 0, `${JSON.stringify(r)}\n${log.join('\n')}`);
  assert.match(r.error ?? '', /cannot decode the image/);
  assert.match(r.truncated ?? '', /cannot decode the image: the JPEG file is truncated/);
  assert.ok(r.afterTokens > 0, JSON.stringify(r));
});
