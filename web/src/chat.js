// OpenAI-style chat messages → what the engine asks: the photo (if any), the newest question
// and the earlier (question, answer) turns. Anything else is a TypeError naming the message at
// fault.

/** The text of a message's `content`: a string, or the `text` parts of a parts array. */
function textOf(content, at) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new TypeError(`${at}.content must be a string or an array of parts, got ${kind(content)}`);
  const texts = [];
  for (const [j, part] of content.entries()) {
    if (part?.type === 'text') {
      if (typeof part.text !== 'string') throw new TypeError(`${at}.content[${j}].text must be a string, got ${kind(part.text)}`);
      texts.push(part.text);
    } else if (part?.type !== 'image_url') {
      throw new TypeError(`${at}.content[${j}] must be a {type: "text"} or {type: "image_url"} part, got ${kind(part?.type ?? part)}`);
    }
  }
  return texts.join('\n');
}

/** The image of a user message's `image_url` parts (the last one), if any. */
function imageOf(content, at) {
  let image = null;
  for (const [j, part] of (Array.isArray(content) ? content : []).entries()) {
    if (part?.type !== 'image_url') continue;
    const url = typeof part.image_url === 'string' ? part.image_url : part.image_url?.url;
    if (typeof url !== 'string' || url === '')
      throw new TypeError(`${at}.content[${j}].image_url must be a URL string or {url}, got ${kind(part.image_url)}`);
    image = url;
  }
  return image;
}

/**
 * OpenAI request fields that would change the answer and that this engine cannot honour, each
 * with the values that ask for nothing (anything else is refused, not ignored).
 */
const UNSUPPORTED = {
  n: (v) => v === 1,
  logit_bias: (v) => typeof v === 'object' && Object.keys(v).length === 0,
  tools: (v) => Array.isArray(v) && v.length === 0,
  tool_choice: (v) => v === 'none',
  functions: (v) => Array.isArray(v) && v.length === 0,
  function_call: (v) => v === 'none',
  response_format: (v) => v?.type === 'text',
};

/** A TypeError for a request field FUSION cannot follow. */
export function checkRequest(request) {
  if (request === null || typeof request !== 'object') throw new TypeError(`the request must be an object, got ${kind(request)}`);
  for (const [field, asksNothing] of Object.entries(UNSUPPORTED)) {
    const value = request[field];
    if (value != null && !asksNothing(value))
      throw new TypeError(`${field} is not supported (got ${kind(value)}): FUSION answers one message of text`);
  }
  const { stop, stream, stream_options: options, logprobs, top_logprobs: top } = request;
  if (logprobs != null && typeof logprobs !== 'boolean') throw new TypeError(`logprobs must be a boolean, got ${kind(logprobs)}`);
  if (top != null) {
    if (!Number.isInteger(top) || top < 0 || top > 20)
      throw new TypeError(`top_logprobs must be an integer from 0 to 20, got ${kind(top)}`);
    if (logprobs !== true) throw new TypeError('top_logprobs needs logprobs: true');
  }
  if (stop != null && typeof stop !== 'string' && !(Array.isArray(stop) && stop.every((s) => typeof s === 'string'))) {
    throw new TypeError(`stop must be a string or an array of strings, got ${kind(stop)}`);
  }
  if (options != null) {
    if (!stream) throw new TypeError('stream_options is only allowed with stream: true');
    if (typeof options !== 'object' || Array.isArray(options))
      throw new TypeError(`stream_options must be an object, got ${kind(options)}`);
    const { include_usage: usage } = options;
    if (usage != null && typeof usage !== 'boolean')
      throw new TypeError(`stream_options.include_usage must be a boolean, got ${kind(usage)}`);
  }
}

const kind = (v) =>
  v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? JSON.stringify(v.slice(0, 40)) : typeof v;

/**
 * Split `messages` into the newest photo (`null` when no message has one: a text-only chat,
 * answered by the plain LLM), the system prompt, the newest question and the earlier turns.
 * The text of the system and developer messages, joined, is the system prompt in place of the
 * chat template's (`null` when there are none: the template's, which FUSION was tuned with).
 * Consecutive user messages are one turn, as are consecutive assistant messages.
 */
export function toTurns(messages) {
  if (!Array.isArray(messages) || messages.length === 0) throw new TypeError('messages must be a non-empty array');
  const turns = [];
  const systems = [];
  let image = null;
  for (const [i, m] of messages.entries()) {
    const at = `messages[${i}]`;
    if (m === null || typeof m !== 'object') throw new TypeError(`${at} must be an object, got ${kind(m)}`);
    if (!['system', 'developer', 'user', 'assistant'].includes(m.role)) {
      throw new TypeError(`${at}: role must be "system", "developer", "user" or "assistant", got ${kind(m.role)}`);
    }
    const text = textOf(m.content, at);
    const photo = imageOf(m.content, at);
    if (photo !== null && m.role !== 'user') throw new TypeError(`${at}: only a user message may carry an image, not a ${m.role} message`);
    if (m.role === 'system' || m.role === 'developer') {
      systems.push(text);
      continue;
    }
    const last = turns.at(-1);
    if (m.role === 'user') {
      image = photo ?? image;
      if (last && last[1] === null) last[0] = [last[0], text].filter(Boolean).join('\n');
      else turns.push([text, null]);
    } else if (last && last[1] === null) {
      last[1] = text;
    } else if (last) {
      last[1] = [last[1], text].filter(Boolean).join('\n');
    } else {
      throw new TypeError(`${at}: an assistant message must follow a user message`);
    }
  }
  const last = turns.pop();
  if (!last || last[1] !== null) throw new TypeError('the last message must come from the user');
  if (last[0].trim() === '') throw new TypeError('the last user message has no text: ask a question about the photo');
  return { image, system: systems.length > 0 ? systems.join('\n') : null, question: last[0], history: turns };
}
