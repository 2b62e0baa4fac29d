// The engine in the browser: a generated tiny model, converted to int4 shards, downloaded into
// the offline cache, loaded in the worker and asked about a photo. Its greedy answer must equal
// the native CLI's for the same model, photo and question.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launchBrowser, openPage, fusionCli, tinyModel } from './harness.mjs';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const photos = join(repo, 'tests', 'photos');
const QUESTION = 'What is unusual about this image?';

let server, browser, page, log, models;
// What the server saw, and a switch to cut the next shard download short.
const shardRequests = [];
let truncateNext = false;

function onRequest(req, res) {
  if (!req.url.endsWith('.bin')) return false;
  shardRequests.push({ url: req.url, range: req.headers.range ?? null });
  if (!truncateNext) return false;
  truncateNext = false;
  const data = readFileSync(join(models, new URL(req.url, 'http://x').pathname.replace(/^\/models\//, '')));
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
  res.write(data.subarray(0, Math.floor(data.length / 3)));
  setTimeout(() => res.destroy(), 100);
  return true;
}

const MANIFEST = '/models/tiny/manifest.json';

before(async () => {
  models = tinyModel(['--backbone', 'llama', '--seed', '7']);
  server = await serve({ mounts: { '/models/': models, '/photos/': photos }, onRequest });
  browser = await launchBrowser();
  ({ page, log } = await openPage(browser, `${server.url}/demo/`));
  await page.waitForSelector('body[data-state=model], body[data-state=error]', { timeout: 120_000 });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

function nativeAnswer(image, question, maxTokens, options = []) {
  // --baseline: no f16 arithmetic, as on SwiftShader; on a random tiny model (flat logits) f16
  // rounding is enough to change a greedy token. The browser's matvecs reduce with subgroups
  // (of 4) and these with the workgroup-memory tree: the same tokens at the tiny model's widths
  // (rows of 2 or 3 loads), though another summation order could change one at others.
  const photo = image === null ? [] : ['--image', join(photos, image)];
  const out = execFileSync(fusionCli, [
    'ask',
    '--model',
    join(models, 'tiny'),
    '--int4',
    '--baseline',
    ...photo,
    question,
    '--max-tokens',
    String(maxTokens),
    ...options,
  ]);
  return out.toString().trim();
}

/** The native CLI's `--logprobs` report (OpenAI's `logprobs.content`) of its answer. */
function nativeLogprobs(image, question, maxTokens, top) {
  const args = [
    'ask',
    '--model',
    join(models, 'tiny'),
    '--int4',
    '--baseline',
    '--image',
    join(photos, image),
    question,
    '--max-tokens',
    String(maxTokens),
    '--logprobs',
    String(top),
  ];
  const { status, stderr } = spawnSync(fusionCli, args, { encoding: 'utf8' });
  assert.equal(status, 0, stderr);
  return JSON.parse(stderr.split('\n').find((l) => l.startsWith('{"logprobs"'))).logprobs;
}

async function browserAnswer(image, question, maxTokens) {
  return page.evaluate(
    async ({ image, question, maxTokens }) => {
      const { Fusion } = await import('/src/index.js');
      window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
      let text = '';
      for await (const piece of window.fusion.ask({ image, question, maxNewTokens: maxTokens })) text += piece;
      return { text: text.trim(), stats: window.fusion.stats(), answer: window.fusion.lastAnswer, info: window.fusion.info };
    },
    { image: `/photos/${image}`, question, maxTokens },
  );
}

test('the greedy answer in the browser equals the native CLI', async () => {
  const want = nativeAnswer('extreme_ironing.jpg', QUESTION, 8);
  const got = await browserAnswer('extreme_ironing.jpg', QUESTION, 8).catch((e) => assert.fail(`${e}\n${log.join('\n')}`));
  assert.ok(got.answer.tokens.length > 0, 'no tokens streamed');
  assert.equal(got.text, want);
  const t = got.stats.lastAnswer;
  assert.ok(t.visionMs > 0 && t.prefillMs > 0 && t.firstTokenMs >= t.visionMs + t.prefillMs, JSON.stringify(got.stats));
  assert.equal(t.decodePath, 'recorded', JSON.stringify(got.stats));
  assert.deepEqual(got.info.gpu, { f16: false, subgroups: true }, 'SwiftShader offers subgroups: web/src/device.js asks for them');
  // Both timed: drawing a 1000×667 photo and reading its pixels back takes well over the 0.1 ms a
  // worker's clock resolves.
  assert.ok(got.stats.photo.decode > 0 && got.stats.photo.tiles > 0, JSON.stringify(got.stats));
});

test('without a photo the plain LLM answers, as the native CLI does, follow-up included', async () => {
  const [question, followUp] = ['Who are you?', 'And then?'];
  const [want, wantFollowUp] = nativeAnswer(null, question, 8, ['--then', followUp])
    .split(`\n> ${followUp}\n`)
    .map((s) => s.trim());
  const r = await page.evaluate(
    async ({ question, followUp }) => {
      const { Fusion } = await import('/src/index.js');
      window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
      const photosBefore = window.fusion.stats().photosEncoded ?? 0;
      let text = '';
      for await (const piece of window.fusion.ask({ question, maxNewTokens: 8 })) text += piece;
      const messages = [
        { role: 'user', content: question },
        { role: 'assistant', content: text },
        { role: 'user', content: [{ type: 'text', text: followUp }] },
      ];
      const reply = await window.fusion.chat.completions.create({ messages, max_tokens: 8 });
      return {
        text: text.trim(),
        reply: reply.choices[0].message.content,
        photos: (window.fusion.stats().photosEncoded ?? 0) - photosBefore,
      };
    },
    { question, followUp },
  );
  assert.ok(want.length > 0, 'the native CLI gave no answer');
  assert.deepEqual([r.text, r.reply], [want, wantFollowUp]);
  assert.equal(r.photos, 0, 'no photo was encoded');
});

test("a system prompt takes the place of the template's, as --system does natively, follow-up included", async () => {
  const [system, question, followUp] = ['Answer in French.', 'Who are you?', 'And then?'];
  const [want, wantFollowUp] = nativeAnswer(null, question, 8, ['--system', system, '--then', followUp])
    .split(`\n> ${followUp}\n`)
    .map((s) => s.trim());
  assert.notEqual(want, nativeAnswer(null, question, 8), 'the system prompt changed nothing: a weak test');
  const r = await page.evaluate(
    async ({ system, question, followUp }) => {
      const { Fusion } = await import('/src/index.js');
      window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
      let text = '';
      for await (const piece of window.fusion.ask({ question, system, maxNewTokens: 8 })) text += piece;
      // The same conversation as OpenAI messages: it goes on in the KV cache.
      const messages = [
        { role: 'system', content: system },
        { role: 'user', content: question },
        { role: 'assistant', content: text },
        { role: 'user', content: followUp },
      ];
      const reply = await window.fusion.chat.completions.create({ messages, max_tokens: 8 });
      const rebuilt = [window.fusion.lastAnswer.stats.rebuilt];
      // Without its system message: the template's, the earlier turns prefilled again under it.
      await window.fusion.chat.completions.create({ messages: messages.slice(1), max_tokens: 2 });
      rebuilt.push(window.fusion.lastAnswer.stats.rebuilt);
      let refused = null;
      try {
        for await (const _ of window.fusion.ask({ question, system: 5 }));
      } catch (e) {
        refused = `${e.name}: ${e.message}`;
      }
      return { text: text.trim(), reply: reply.choices[0].message.content, rebuilt, refused };
    },
    { system, question, followUp },
  );
  assert.deepEqual([r.text, r.reply], [want, wantFollowUp]);
  assert.deepEqual(r.rebuilt, [false, true]);
  assert.match(r.refused ?? 'accepted', /^TypeError: system must be a string, got number/);
});

test('abort stops the answer; an OpenAI-style follow-up continues the KV cache', async () => {
  const r = await page.evaluate(async () => {
    const { Fusion } = await import('/src/index.js');
    window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
    const image = URL.createObjectURL(await (await fetch('/photos/waterview.jpg')).blob());
    const photosBefore = window.fusion.stats().photosEncoded ?? 0;
    const controller = new AbortController();
    let pieces = 0;
    let error = null;
    try {
      for await (const _ of window.fusion.ask({ image, question: 'Describe it.', maxNewTokens: 64, signal: controller.signal })) {
        pieces++;
        controller.abort();
      }
    } catch (e) {
      error = e.name;
    }
    const aborted = window.fusion.lastAnswer;
    let badRole = null;
    try {
      window.fusion.chat.completions.create({ messages: [{ role: 'tool', content: 'x' }] });
    } catch (e) {
      badRole = e.message;
    }
    const chunks = [];
    const messages = [
      { role: 'system', content: 'ignored' },
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: image } },
          { type: 'text', text: 'Describe it.' },
        ],
      },
      { role: 'assistant', content: 'a lake' },
      { role: 'user', content: 'And the sky?' },
    ];
    for await (const chunk of window.fusion.chat.completions.create({
      messages,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 2,
    }))
      chunks.push(chunk);
    return {
      pieces,
      error,
      abortedStop: aborted.stop,
      abortedTokens: aborted.tokens.length,
      badRole,
      chunks,
      photos: window.fusion.stats().photosEncoded - photosBefore,
    };
  });
  assert.equal(r.error, 'AbortError');
  assert.equal(r.abortedStop, 'cancelled');
  assert.ok(r.abortedTokens < 64 && r.pieces <= 2, JSON.stringify(r));
  assert.match(r.badRole ?? '', /role must be/);
  // As OpenAI streams with `stream_options.include_usage`: text chunks, the finishing chunk,
  // then the usage in a chunk with no choices (`usage: null` in all others).
  const usageChunk = r.chunks.at(-1);
  const [finishing, ...texts] = r.chunks.slice(0, -1).reverse();
  const text = texts.map((c) => c.choices[0].delta.content).join('');
  assert.ok(text.length > 0, JSON.stringify(r.chunks));
  assert.equal(finishing.choices[0].finish_reason, 'length');
  assert.ok(
    [finishing, ...texts].every((c) => c.usage === null),
    JSON.stringify(r.chunks),
  );
  assert.deepEqual(usageChunk.choices, []);
  assert.equal(usageChunk.usage.completion_tokens, 2);
  // The follow-up continues the KV cache: only its own turn is prefilled, no image tokens.
  assert.ok(usageChunk.usage.prompt_tokens < 100, JSON.stringify(usageChunk.usage));
  assert.equal(r.photos, 1, "the follow-up must reuse the photo's tile features");
});

test('stop sequences and repetition penalties: the browser equals the native CLI', async () => {
  // A question the tiny model answers at length, and two characters first found in the second
  // half of that answer.
  let question, full, stop;
  for (const q of ['Describe it.', 'What is in this photo?', 'Where is this?', 'What colour is the sky?']) {
    full = nativeAnswer('waterview.jpg', q, 16);
    const chars = [...full];
    stop = chars
      .map((_, k) => [chars.slice(0, k).join('').length, chars.slice(k, k + 2).join('')])
      .slice(chars.length >> 1, -1)
      .find(([at, s]) => full.indexOf(s) === at && s.trim() !== '')?.[1];
    if (chars.length >= 6 && stop) {
      question = q;
      break;
    }
  }
  assert.ok(question, 'no answer of 6 characters or more with two characters first found in its second half');
  const wantCut = nativeAnswer('waterview.jpg', question, 16, ['--stop', stop]);
  assert.equal(wantCut, full.slice(0, full.indexOf(stop)).trim());
  const penalties = { repetitionPenalty: 1.8, frequencyPenalty: 0.6, presencePenalty: 0.3 };
  const wantPenalised = nativeAnswer('waterview.jpg', question, 16, [
    '--repetition-penalty',
    '1.8',
    '--frequency-penalty',
    '0.6',
    '--presence-penalty',
    '0.3',
  ]);
  assert.notEqual(wantPenalised, full, 'the penalties changed nothing: a weak test');

  const r = await page.evaluate(
    async ({ question, stop, penalties }) => {
      const { Fusion } = await import('/src/index.js');
      window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
      const image = '/photos/waterview.jpg';
      const messages = [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: image } },
            { type: 'text', text: question },
          ],
        },
      ];
      const cut = await window.fusion.chat.completions.create({ messages, max_completion_tokens: 16, stop: ['never said', stop] });
      const cutStop = window.fusion.lastAnswer.stop;
      let streamed = '';
      for await (const chunk of window.fusion.chat.completions.create({ messages, max_tokens: 16, stop, stream: true }))
        streamed += chunk.choices[0].delta.content ?? '';
      let penalised = '';
      for await (const piece of window.fusion.ask({ image, question, maxNewTokens: 16, ...penalties })) penalised += piece;
      const failure = async (request) => {
        try {
          await request();
          return null;
        } catch (e) {
          return `${e.name}: ${e.message}`;
        }
      };
      const refused = [];
      for (const extra of [
        { n: 2 },
        { top_logprobs: 2 },
        { tools: [{ type: 'function' }] },
        { response_format: { type: 'json_object' } },
        { stop: 5 },
        { presence_penalty: 3 },
      ]) {
        refused.push(await failure(() => window.fusion.chat.completions.create({ messages, max_tokens: 2, ...extra })));
      }
      refused.push(
        await failure(async () => {
          for await (const _ of window.fusion.ask({ image, question, maxNewTokens: 2, repetitionPenalty: 0 }));
        }),
      );
      refused.push(
        await failure(async () => {
          for await (const _ of window.fusion.ask({ image, maxNewTokens: 2 }));
        }),
      );
      return { cut: cut.choices[0], cutStop, streamed, penalised: penalised.trim(), refused };
    },
    { question, stop, penalties },
  );
  assert.deepEqual([r.cut.message.content, r.cut.finish_reason, r.cutStop], [wantCut, 'stop', 'stop_sequence']);
  assert.equal(r.streamed.trim(), wantCut, 'the stop sequence was streamed, or text before it was not');
  assert.equal(r.penalised, wantPenalised);
  const expected = [
    /^TypeError: n is not supported/,
    /^TypeError: top_logprobs needs logprobs: true/,
    /^TypeError: tools is not supported/,
    /^TypeError: response_format is not supported/,
    /^TypeError: stop must be a string or an array of strings, got number/,
    /presence_penalty: must be between -2 and 2/,
    /repetition_penalty: must be more than 0/,
    /^TypeError: question must be a string, got undefined/,
  ];
  expected.forEach((pattern, i) => assert.match(r.refused[i] ?? 'accepted', pattern));
});

test("log-probabilities in the browser equal the native CLI's, streamed or not", async () => {
  const want = nativeLogprobs('waterview.jpg', QUESTION, 8, 2);
  const r = await page.evaluate(async (question) => {
    const { Fusion } = await import('/src/index.js');
    window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
    const messages = [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: '/photos/waterview.jpg' } },
          { type: 'text', text: question },
        ],
      },
    ];
    const request = { messages, max_tokens: 8, logprobs: true, top_logprobs: 2 };
    const whole = await window.fusion.chat.completions.create(request);
    const text = window.fusion.lastAnswer.text;
    const chunks = [];
    for await (const chunk of window.fusion.chat.completions.create({ ...request, stream: true })) chunks.push(chunk.choices[0].logprobs);
    return { whole: whole.choices[0], text, tokens: whole.usage.completion_tokens, chunks };
  }, QUESTION);
  const got = r.whole.logprobs.content;
  assert.equal(got.length, r.tokens);
  assert.deepEqual(
    got.map((t) => [t.bytes, t.top_logprobs.map((a) => a.bytes)]),
    want.map((t) => [t.bytes, t.top_logprobs.map((a) => a.bytes)]),
  );
  // SwiftShader's subgroup reductions and lavapipe's workgroup-memory tree sum in other orders.
  const close = (a, b) => Math.abs(a.logprob - b.logprob) < 1e-3;
  got.forEach((t, i) =>
    assert.ok(close(t, want[i]) && t.top_logprobs.every((a, j) => close(a, want[i].top_logprobs[j])), JSON.stringify([t, want[i]])),
  );
  // The tokens' bytes are the answer's (whose text keeps a last, partial character as U+FFFD).
  assert.equal(r.text, new TextDecoder().decode(new Uint8Array(got.flatMap((t) => t.bytes))).trim());
  // A stream: null in the text chunks, the whole answer's in the finishing chunk.
  assert.deepEqual(r.chunks.at(-1), r.whole.logprobs);
  assert.ok(
    r.chunks.slice(0, -1).every((l) => l === null),
    JSON.stringify(r.chunks),
  );
});

test('a lost GPU device fails the answer clearly; the next ask recovers from the verified cache', async () => {
  shardRequests.length = 0;
  const r = await page.evaluate(async () => {
    const { Fusion } = await import('/src/index.js');
    window.fusion ??= await Fusion.load('/models/tiny/manifest.json');
    const image = URL.createObjectURL(await (await fetch('/photos/waterview.jpg')).blob());
    let error = null;
    let pieces = 0;
    try {
      for await (const _ of window.fusion.ask({ image, question: 'Describe it.', maxNewTokens: 32 })) {
        if (pieces++ === 0) await window.fusion.loseDevice();
      }
    } catch (e) {
      error = e.message;
    }
    let text = '';
    for await (const piece of window.fusion.ask({ image, question: 'What is it?', maxNewTokens: 2 })) text += piece;
    return { error, pieces, text, tokens: window.fusion.lastAnswer.tokens.length, stats: window.fusion.stats() };
  });
  assert.match(r.error ?? 'no error', /GPU device was lost/, JSON.stringify(r));
  assert.ok(r.pieces < 32, `the answer went on after the loss: ${r.pieces} pieces`);
  assert.equal(r.tokens, 2, `the next ask answers: ${JSON.stringify(r)}`);
  assert.equal(r.stats.recoveries, 1);
  assert.deepEqual(shardRequests, [], 'recovery re-uploads from the offline copy, without downloading');
});

/** Load the model and unload it: `{ error }`, or `{ error: null, hashedBytes }`. */
const load = () =>
  page.evaluate(async (url) => {
    const { Fusion } = await import('/src/index.js');
    try {
      const model = await Fusion.load(url);
      model.unload();
      return { error: null, hashedBytes: model.info.hashedBytes };
    } catch (e) {
      return { error: e.message };
    }
  }, MANIFEST);

/** Overwrite `bytes` at `position` of a file of the model's offline copy in OPFS. */
const editCached = (name, position, bytes) =>
  page.evaluate(
    async ({ url, name, position, bytes }) => {
      const root = await navigator.storage.getDirectory();
      const dir = await (
        await root.getDirectoryHandle('fusion-models')
      ).getDirectoryHandle(encodeURIComponent(new URL(url, location.href).href));
      const w = await (await dir.getFileHandle(name)).createWritable({ keepExistingData: true });
      await w.write({ type: 'write', position, data: new Uint8Array(bytes) });
      await w.close();
    },
    { url: MANIFEST, name, position, bytes },
  );

test('a truncated download is a clear error, and loading again resumes it', async () => {
  await page.evaluate((url) => import('/src/index.js').then((m) => m.Fusion.evict(url)), MANIFEST);
  truncateNext = true;
  assert.match((await load()).error ?? 'loaded', /stopped at \d+ of \d+ bytes.*resumes/);
  shardRequests.length = 0;
  assert.equal((await load()).error, null);
  assert.ok(
    shardRequests.some((r) => /^bytes=[1-9]\d*-$/.test(r.range ?? '')),
    `no resumed request: ${JSON.stringify(shardRequests)}`,
  );
});

test('a corrupted cached shard is detected, fetched again and never used', async () => {
  await editCached('shard-00000.bin', 1000, [0x55, 0xaa, 0x55]);
  shardRequests.length = 0;
  assert.equal((await load()).error, null);
  assert.ok(
    shardRequests.some((r) => r.url.endsWith('shard-00000.bin') && !r.range),
    JSON.stringify(shardRequests),
  );
});

test('a verified offline copy is not hashed again, unless it changed since', async () => {
  const again = await load();
  assert.deepEqual(again, { error: null, hashedBytes: 0 }, 'a model loaded again was hashed again');
  // Its record no longer matching (as after any write into the shard): hashed again, and kept.
  await editCached('shard-00000.bin.verified', 0, [0x30]);
  shardRequests.length = 0;
  const changed = await load();
  assert.equal(changed.error, null);
  assert.ok(changed.hashedBytes > 0, JSON.stringify(changed));
  assert.deepEqual(shardRequests, [], 'a shard that still matches its sha256 is not fetched again');
  assert.deepEqual(await load(), { error: null, hashedBytes: 0 });
});

test('after one visit the page and the cached model work offline', async () => {
  await page.evaluate(() => navigator.serviceWorker.ready);
  await browser.setOffline(true);
  try {
    await page.reload();
    await page.waitForSelector('body[data-state=model], body[data-state=error]', { timeout: 120_000 });
    assert.equal(await page.getAttribute('body', 'data-state'), 'model', `${await page.textContent('#status')}\n${log.join('\n')}`);
    // A question before any photo (the plain LLM), then one about a photo; each stopped once
    // its answer shows.
    const askAndStop = async (question) => {
      await page.fill('#question', question);
      await page.click('#go');
      await page.waitForFunction(() => document.querySelector('#chat .a:last-child')?.textContent.length > 0, null, { timeout: 600_000 });
      // A click, unless the answer has ended already (the button is then disabled).
      await page.evaluate(() => document.getElementById('stop').click());
      await page.waitForSelector('body[data-state=model]', { timeout: 120_000 });
    };
    await askAndStop('Who are you?');
    await page.setInputFiles('#file', join(photos, 'extreme_ironing.jpg'));
    await askAndStop('What is the man doing?');
  } finally {
    await browser.setOffline(false);
  }
});
