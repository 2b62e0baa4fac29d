// The engine in the browser: a generated tiny model, converted to int4 shards, downloaded into
// the offline cache, loaded in the worker and asked about a photo. Its greedy answer must equal
// the native CLI's for the same model, photo and question.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launchBrowser, openPage } from './harness.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const photos = join(repo, '..', 'shared', 'photos');
const fusion = join(process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/fusion-vlm/target'), 'debug', 'fusion');
const QUESTION = 'What is unusual about this image?';

let server, browser, page, log, models;

before(async () => {
  models = mkdtempSync(join(tmpdir(), 'fusion-models-'));
  execFileSync(fusion, ['tiny', join(models, 'src'), '--backbone', 'llama', '--seed', '7']);
  execFileSync(fusion, ['convert', join(models, 'src'), join(models, 'tiny')]);
  server = await serve({ mounts: { '/models/': models, '/photos/': photos } });
  browser = await launchBrowser();
  ({ page, log } = await openPage(browser, `${server.url}/demo/`));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

function nativeAnswer(image, question, maxTokens) {
  const out = execFileSync(fusion, ['ask', '--model', join(models, 'tiny'), '--int4', '--image', join(photos, image), question, '--max-tokens', String(maxTokens)]);
  return out.toString().trim();
}

async function browserAnswer(image, question, maxTokens) {
  return page.evaluate(
    async ({ image, question, maxTokens }) => {
      const { Fusion } = await import('/src/index.js');
      window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
      let text = '';
      for await (const piece of window.fusion.ask({ image, question, maxNewTokens: maxTokens })) text += piece;
      return { text: text.trim(), stats: window.fusion.stats(), answer: window.fusion.lastAnswer };
    },
    { image: `/photos/${image}`, question, maxTokens },
  );
}

test('the greedy answer in the browser equals the native CLI', async () => {
  const want = nativeAnswer('extreme_ironing.jpg', QUESTION, 8);
  const got = await browserAnswer('extreme_ironing.jpg', QUESTION, 8).catch((e) => assert.fail(`${e}\n${log.join('\n')}`));
  assert.ok(got.answer.tokens.length > 0, 'no tokens streamed');
  assert.equal(got.text, want);
  assert.ok(got.stats.lastAnswer.firstTokenMs > 0);
});
