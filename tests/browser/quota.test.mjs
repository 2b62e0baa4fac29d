// Storage running out in the middle of a download: a clear error, nothing verified is lost, the
// partial shard is kept, and loading again (with room) resumes it and passes the sha256 check.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve, launchBrowser, openPage, tinyModel } from './harness.mjs';

const MANIFEST = '/models/tiny/manifest.json';

let server, browser, page, log, cdp, models;
const shardRequests = [];
let holdNext = null; // resolves to release a held shard request
let truncateNext = false;

before(async () => {
  models = tinyModel(['--seed', '5']);
  // A shard request can be held until the test has shrunk the quota.
  const onRequest = (req, res) => {
    if (!req.url.endsWith('.bin')) return false;
    shardRequests.push(req.headers.range ?? null);
    if (truncateNext) {
      truncateNext = false;
      const data = readFileSync(join(models, 'tiny', new URL(req.url, 'http://x').pathname.split('/').pop()));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
      res.write(data.subarray(0, Math.floor(data.length / 3)));
      setTimeout(() => res.destroy(), 100);
      return true;
    }
    if (!holdNext) return false;
    const release = holdNext;
    holdNext = null;
    release.then(() => server.handle(req, res));
    return true;
  };
  server = await serve({ mounts: { '/models/': models }, onRequest });
  browser = await launchBrowser();
  ({ page, log } = await openPage(browser, `${server.url}/demo/?model=/models/absent/manifest.json`));
  await page.waitForSelector('body[data-state=ready]', { timeout: 120_000 });
  cdp = await browser.newCDPSession(page);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const quota = (quotaSize) => cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize });

const load = () =>
  page.evaluate(async (url) => {
    const { Fusion } = await import('/src/index.js');
    try {
      (await Fusion.load(url)).unload();
      return 'loaded';
    } catch (e) {
      return e.message;
    }
  }, MANIFEST);

/** The model's OPFS folder: file name → size. */
const cachedFiles = () =>
  page.evaluate(async (url) => {
    const root = await navigator.storage.getDirectory();
    const dir = await (
      await root.getDirectoryHandle('fusion-models')
    ).getDirectoryHandle(encodeURIComponent(new URL(url, location.href).href));
    const out = {};
    for await (const [name, h] of dir.entries()) out[name] = (await h.getFile()).size;
    return out;
  }, MANIFEST);

test('storage filling up mid-download is a clear error; the partial shard resumes later', async () => {
  // A first, interrupted download leaves part of the shard.
  truncateNext = true;
  assert.match(await load(), /stopped at \d+ of \d+ bytes/);
  const before = await cachedFiles();
  const partial = before['shard-00000.bin.part'];
  assert.ok(partial > 0, JSON.stringify(before));

  // The resumed download starts; past the pre-download check another app (here, the test)
  // takes the room that was left.
  let release;
  holdNext = new Promise((r) => (release = r));
  shardRequests.length = 0;
  const loading = load();
  while (shardRequests.length === 0) await new Promise((r) => setTimeout(r, 50));
  const { usage } = await page.evaluate(() => navigator.storage.estimate());
  await quota(usage);
  release();
  assert.match(await loading, /storage for this site is full: .* stopped at \d+ of \d+ bytes .*loading again resumes it/, log.join('\n'));
  const after = await cachedFiles();
  assert.ok(after['shard-00000.bin.part'] >= partial, `the partial shard is kept: ${JSON.stringify(after)}`);
  assert.ok(!('shard-00000.bin' in after), `nothing unverified counts as a shard: ${JSON.stringify(after)}`);

  // With room again, loading resumes where it stopped and the shard passes its sha256 check.
  await quota(1 << 30);
  shardRequests.length = 0;
  assert.equal(await load(), 'loaded', log.join('\n'));
  assert.ok(
    shardRequests.some((r) => /^bytes=[1-9]\d*-$/.test(r ?? '')),
    `resumed with a range: ${JSON.stringify(shardRequests)}`,
  );
});
