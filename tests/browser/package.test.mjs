// The npm package as users get it: `npm pack`, installed into a fresh folder, imported by a
// fresh page that loads a model with it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launchBrowser, openPage, tinyModel, scratch } from './harness.mjs';

const web = fileURLToPath(new URL('../../web', import.meta.url));
let server, browser, app;

before(async () => {
  app = scratch('app');
  execFileSync('npm', ['pack', '--pack-destination', app, '--loglevel=error'], { cwd: web });
  const tarball = readdirSync(app).find((f) => f.endsWith('.tgz'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `./${tarball}`], { cwd: app });
  writeFileSync(
    join(app, 'index.html'),
    `<!doctype html><script type="module">
      import { Fusion } from './node_modules/fusion-vlm/src/index.js';
      try {
        const model = await Fusion.load('/models/tiny/manifest.json');
        document.body.dataset.result = 'loaded ' + model.info.bytes;
        model.unload();
      } catch (e) { document.body.dataset.result = 'error ' + e.message; }
    </script>`,
  );
  tinyModel([], join(app, 'models'));
  server = await serve({ root: app });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('the packed npm package loads a model in a fresh page', async () => {
  const { page, log } = await openPage(browser, `${server.url}/index.html`);
  await page.waitForSelector('body[data-result]', { state: 'attached', timeout: 120_000 });
  const result = await page.getAttribute('body', 'data-result');
  assert.match(result, /^loaded \d+$/, `${result}\n${log.join('\n')}`);
});
