// Chat-history fuzzing of the OpenAI-style message parser (plain Node, no browser): any
// messages array either becomes a photo, a question and well-formed turns, or a TypeError that
// names the problem. Never another kind of error, never a malformed result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkRequest, toTurns } from '../../web/src/chat.js';

const CASES = Number(process.env.FUSION_FUZZ_ITERS ?? 5000);

function rng(seed) {
  let s = BigInt(seed);
  return () => {
    s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    return Number(s >> 33n) / 2 ** 31;
  };
}

const pick = (r, xs) => xs[Math.floor(r() * xs.length)];
const ROLES = ['user', 'user', 'assistant', 'assistant', 'system', 'developer', 'tool', 'function', 'User', '', null, undefined, 7, {}];
const TEXTS = ['What is this?', '', ' ', '🦀 naïve\u0000text', '<|eot_id|>', 'x'.repeat(5000), '\ud800'];
const part = (r) =>
  pick(r, [
    () => ({ type: 'text', text: pick(r, TEXTS) }),
    () => ({ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }),
    () => ({ type: 'image_url', image_url: '/photos/waterview.jpg' }),
    () => ({ type: 'image_url', image_url: { url: 42 } }),
    () => ({ type: 'image_url' }),
    () => ({ type: 'text', text: 12 }),
    () => ({ type: 'audio', data: 'x' }),
    () => null,
    () => 'text',
  ])();
const content = (r) =>
  pick(r, [
    () => pick(r, TEXTS),
    () => Array.from({ length: Math.floor(r() * 4) }, () => part(r)),
    () => null,
    () => 5,
    () => ({ text: 'hi' }),
  ])();
// A valid conversation (photo first, alternating turns), then with probability ½ one message
// replaced by a random one: most mutations land near valid input, where parsers break.
function conversation(r) {
  const turns = 1 + Math.floor(r() * 4);
  const out = [
    {
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: '/photos/waterview.jpg' } },
        { type: 'text', text: 'What is this?' },
      ],
    },
  ];
  for (let t = 1; t < turns; t++) out.push({ role: 'assistant', content: pick(r, TEXTS) }, { role: 'user', content: pick(r, TEXTS) });
  if (r() < 0.5) out[Math.floor(r() * out.length)] = message(r);
  return out;
}
const message = (r) =>
  pick(r, [() => ({ role: pick(r, ROLES), content: content(r) }), () => null, () => 'user: hi', () => ({ role: 'user' })])();

// The test's own reading of OpenAI's message shapes, apart from web/src/chat.js: the parser's
// error must name the first message at fault (malformed, an image outside a user message, an
// assistant message before any user message), or, when none is, what is wrong with the
// conversation as a whole.
const isPart = (p) =>
  (p?.type === 'text' && typeof p.text === 'string') ||
  (p?.type === 'image_url' &&
    ((typeof p.image_url === 'string' && p.image_url !== '') || (typeof p.image_url?.url === 'string' && p.image_url.url !== '')));
const isMessage = (m) =>
  m !== null &&
  typeof m === 'object' &&
  ['system', 'developer', 'user', 'assistant'].includes(m.role) &&
  (typeof m.content === 'string' || (Array.isArray(m.content) && m.content.every(isPart)));
const hasImage = (m) => Array.isArray(m.content) && m.content.some((p) => p?.type === 'image_url');
const textOf = (m) =>
  typeof m.content === 'string'
    ? m.content
    : m.content
        .filter((p) => p.type === 'text')
        .map((p) => p.text)
        .join('\n');
const atFault = (m, before) =>
  !isMessage(m) || (m.role !== 'user' && hasImage(m)) || (m.role === 'assistant' && !before.some((p) => p.role === 'user'));

function assertNamesTheFault(message, messages, where) {
  const fail = (why) => assert.fail(`${where}: ${why}: ${JSON.stringify(message)} for ${JSON.stringify(messages)?.slice(0, 400)}`);
  if (!Array.isArray(messages) || messages.length === 0) {
    if (message !== 'messages must be a non-empty array') fail('not an array, or empty, yet the error says otherwise');
    return;
  }
  const first = messages.findIndex((m, k) => atFault(m, messages.slice(0, k)));
  if (first >= 0) {
    if (!message.startsWith(`messages[${first}]`)) fail(`messages[${first}] is the first message at fault`);
    return;
  }
  const chat = messages.filter((m) => m.role === 'user' || m.role === 'assistant');
  if (chat.at(-1)?.role !== 'user') {
    if (message !== 'the last message must come from the user') fail('the conversation ends with an assistant message');
    return;
  }
  const question = chat
    .slice(chat.findLastIndex((m) => m.role !== 'user') + 1)
    .map(textOf)
    .join('');
  if (question.trim() !== '' || !message.startsWith('the last user message has no text')) fail('no message is at fault');
}

test(`${CASES} random chat histories: a well-formed request or a clear TypeError`, () => {
  const seed = Number(process.env.FUSION_FUZZ_SEED ?? Date.now());
  const r = rng(seed);
  let accepted = 0;
  for (let i = 0; i < CASES; i++) {
    const messages = pick(r, [
      () => pick(r, [[], null, {}, 'hi']),
      () => Array.from({ length: 1 + Math.floor(r() * 6) }, () => message(r)),
      () => conversation(r),
      () => conversation(r),
    ])();
    let out;
    try {
      out = toTurns(messages);
    } catch (e) {
      assert.ok(e instanceof TypeError, `seed ${seed} case ${i}: ${e?.constructor?.name}: ${e?.message}`);
      assertNamesTheFault(e.message, messages, `seed ${seed} case ${i}`);
      continue;
    }
    accepted++;
    // A photo, or none (a text-only chat).
    assert.ok(
      out.image === null || (typeof out.image === 'string' && out.image.length > 0),
      `seed ${seed} case ${i}: ${JSON.stringify(out.image)}`,
    );
    assert.ok(out.system === null || typeof out.system === 'string', `seed ${seed} case ${i}: ${JSON.stringify(out.system)}`);
    assert.equal(typeof out.question, 'string');
    assert.ok(out.question.trim().length > 0);
    for (const turn of out.history) {
      assert.ok(
        Array.isArray(turn) && turn.length === 2 && turn.every((t) => typeof t === 'string'),
        `seed ${seed} case ${i}: ${JSON.stringify(turn)}`,
      );
    }
  }
  assert.ok(accepted > 0, 'some histories are valid');
});

test('request fields FUSION cannot follow are refused, not ignored', () => {
  for (const ok of [
    {},
    { n: 1, logprobs: false, logit_bias: {}, tools: [], tool_choice: 'none', response_format: { type: 'text' }, stop: null },
    { stop: 'x' },
    { stop: ['x', '\n'] },
    { model: 'any', user: 'u' },
    { stream: true, stream_options: { include_usage: true } },
    { stream: false, stream_options: null },
    { logprobs: true },
    { logprobs: true, top_logprobs: 20 },
  ]) {
    assert.doesNotThrow(() => checkRequest(ok), JSON.stringify(ok));
  }
  for (const [bad, message] of [
    [{ n: 3 }, /^n is not supported \(got number\)/],
    [{ logit_bias: { 42: -100 } }, /^logit_bias is not supported/],
    [{ logprobs: 'yes' }, /^logprobs must be a boolean/],
    [{ top_logprobs: 2 }, /^top_logprobs needs logprobs: true/],
    [{ logprobs: true, top_logprobs: 21 }, /^top_logprobs must be an integer from 0 to 20, got number/],
    [{ logprobs: true, top_logprobs: 1.5 }, /^top_logprobs must be an integer/],
    [{ tools: [{ type: 'function' }] }, /^tools/],
    [{ tool_choice: 'auto' }, /^tool_choice/],
    [{ functions: [{}] }, /^functions/],
    [{ function_call: 'auto' }, /^function_call/],
    [{ response_format: { type: 'json_object' } }, /^response_format/],
    [{ stop: 5 }, /^stop must be a string or an array of strings, got number/],
    [{ stop: ['a', 7] }, /^stop must be/],
    [{ stream_options: { include_usage: true } }, /^stream_options is only allowed with stream: true/],
    [{ stream: true, stream_options: 'usage' }, /^stream_options must be an object/],
    [{ stream: true, stream_options: { include_usage: 1 } }, /^stream_options.include_usage must be a boolean/],
    [null, /^the request must be an object/],
  ]) {
    assert.throws(
      () => checkRequest(bad),
      (e) => e instanceof TypeError && message.test(e.message),
      JSON.stringify(bad),
    );
  }
});

test('well-formed conversations keep their turns', () => {
  const img = { type: 'image_url', image_url: { url: '/photos/waterview.jpg' } };
  const out = toTurns([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: [img, { type: 'text', text: 'What is this?' }] },
    { role: 'assistant', content: 'A lake.' },
    { role: 'user', content: 'Any boats?' },
    { role: 'user', content: 'And people?' },
  ]);
  assert.deepEqual(out, {
    image: '/photos/waterview.jpg',
    system: 'Be brief.',
    question: 'Any boats?\nAnd people?',
    history: [['What is this?', 'A lake.']],
  });
  assert.throws(() => toTurns([{ role: 'tool', content: 'x' }]), /messages\[0\]: role must be/);
  assert.throws(() => toTurns([{ role: 'user', content: [img] }]), /no text/);
  assert.throws(
    () =>
      toTurns([
        { role: 'system', content: [img, { type: 'text', text: 'Be brief.' }] },
        { role: 'user', content: 'hi' },
      ]),
    /messages\[0\]: only a user message may carry an image, not a system message/,
  );
  assert.throws(
    () =>
      toTurns([
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: [img] },
        { role: 'user', content: 'and?' },
      ]),
    /messages\[1\]: only a user message/,
  );
  // System and developer messages, wherever they are, joined in order.
  const systems = toTurns([
    { role: 'developer', content: [{ type: 'text', text: 'Be brief.' }] },
    { role: 'user', content: 'hi' },
    { role: 'system', content: 'In French.' },
  ]);
  assert.deepEqual(systems, { image: null, system: 'Be brief.\nIn French.', question: 'hi', history: [] });
  // Without a photo anywhere: a text-only chat.
  assert.deepEqual(
    toTurns([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'who are you?' },
    ]),
    {
      image: null,
      system: null,
      question: 'who are you?',
      history: [['hi', 'hello']],
    },
  );
});
