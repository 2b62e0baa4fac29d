// The demo page's model picker: the models of web/demo/models.json with their sizes, which are
// offline already, loading the chosen one, deleting a cached one; ?model= picks without adding a
// second entry; a random-weight model is announced as noise; a long unbroken word wraps. The
// model served is a published-layout one (`fusion tiny --published`: 32 layers, Phi-3.5's slow
// SentencePiece tokenizer, converted to tokenizer.slow.json), which answers as natively.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { serve, launchBrowser, openPage, tinyModel, fusionCli } from './harness.mjs';

const listed = JSON.parse(readFileSync(fileURLToPath(new URL('../../web/demo/models.json', import.meta.url)), 'utf8'));

let server, browser, models;

before(async () => {
  models = tinyModel(['--published', '--backbone', 'phi', '--seed', '5']);
  server = await serve({ mounts: { '/models/': models } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const options = (page) => page.$$eval('#model option', (os) => os.map((o) => ({ text: o.textContent, selected: o.selected })));

test('the picker lists the known models, loads the first, and deletes its offline copy', async () => {
  const { page, log } = await openPage(browser, `${server.url}/demo/?model=/models/tiny/manifest.json`);
  await page.waitForSelector('body[data-state=model], body[data-state=error]', { timeout: 300_000 });
  assert.equal(await page.getAttribute('body', 'data-state'), 'model', `${await page.textContent('#status')}\n${log.join('\n')}`);

  let shown = await options(page);
  assert.equal(shown.length, listed.length, 'the ?model= of a listed model is not listed twice');
  assert.ok(shown[0].selected && shown[0].text.startsWith(listed[0].name), JSON.stringify(shown));
  assert.match(shown[0].text, /offline/, 'loaded once, it is offline');
  assert.ok(
    shown.slice(1).every((o) => !/offline/.test(o.text)),
    JSON.stringify(shown),
  );
  assert.match(shown[1].text, /3\.0 GB/, 'sizes from models.json');
  assert.ok(await page.isVisible('#notice'), 'a random-weight model says its answers are noise');

  // The slow tokenizer in wasm: the same prompt and the same greedy answer as the native CLI
  // (--baseline: no f16 arithmetic, as on SwiftShader).
  const browserAnswer = await page.evaluate(async () => {
    const { Fusion } = await import('/src/index.js');
    const fusion = await Fusion.load('/models/tiny/manifest.json');
    let text = '';
    for await (const piece of fusion.ask({ question: 'Who are you?', maxNewTokens: 3 })) text += piece;
    const { promptTokens, tokens } = fusion.lastAnswer;
    await fusion.unload();
    return { text: text.trim(), promptTokens, tokens: tokens.length };
  });
  const args = ['ask', '--model', join(models, 'tiny'), '--int4', '--baseline', 'Who are you?', '--max-tokens', '3'];
  const native = spawnSync(fusionCli, args, { encoding: 'utf8' });
  assert.equal(native.status, 0, native.stderr);
  assert.equal(browserAnswer.text, native.stdout.trim(), JSON.stringify(browserAnswer));
  assert.match(native.stderr, new RegExp(`^\\[${browserAnswer.promptTokens} prompt tokens, ${browserAnswer.tokens} new tokens`, 'm'));

  // A long unbroken word stays inside the page.
  const widens = await page.evaluate(() => {
    const a = Object.assign(document.createElement('p'), { className: 'a', textContent: 'x'.repeat(5000) });
    document.getElementById('chat').append(a);
    const wider = document.documentElement.scrollWidth > document.documentElement.clientWidth;
    a.remove();
    return wider;
  });
  assert.equal(widens, false);

  await page.click('#delete');
  await page.waitForFunction(() => /Deleted the offline copy/.test(document.getElementById('status').textContent));
  shown = await options(page);
  assert.ok(!/offline/.test(shown[0].text), JSON.stringify(shown));
  assert.deepEqual(await page.evaluate(async () => (await import('/src/index.js')).Fusion.cached()), []);
  assert.ok(await page.isDisabled('#delete'));
  await page.close();
});

test('a ?model= the list does not know is listed first, and no notice for it', async () => {
  const { page, log } = await openPage(browser, `${server.url}/demo/?model=/models/absent/manifest.json`);
  await page.waitForFunction(() => /No model at/.test(document.getElementById('status').textContent), null, { timeout: 120_000 });
  const shown = await options(page);
  assert.equal(shown.length, listed.length + 1, log.join('\n'));
  assert.ok(shown[0].selected && shown[0].text === '/models/absent/manifest.json', JSON.stringify(shown));
  assert.equal(await page.isVisible('#notice'), false);
  await page.close();
});
