// FUSION in the browser: the public API. The engine runs in a module worker; this module only
// passes messages, so the page thread never blocks.
import { Msg } from './protocol.js';
import { cachedModels, evictModel } from './cache.js';
import { checkRequest, toTurns } from './chat.js';
import { checkPhotoBlob } from './photo.js';

let nextId = 1;
const UNLOADED = () => new Error('the model was unloaded: load it again with Fusion.load');

/**
 * Turn any supported image input into an ImageBitmap (decoded by the browser), turned by its EXIF
 * orientation as the browser shows it (createImageBitmap's default, `imageOrientation: 'from-image'`;
 * the native engine does the same). A file (URL, Blob) that is a truncated JPEG is refused.
 */
async function toBitmap(image) {
  if (typeof image === 'string' || image instanceof URL) {
    const res = await fetch(image);
    if (!res.ok) throw new Error(`fetching ${image}: HTTP ${res.status}`);
    image = await res.blob();
  }
  if (typeof Blob !== 'undefined' && image instanceof Blob) await checkPhotoBlob(image);
  if (typeof HTMLImageElement !== 'undefined' && image instanceof HTMLImageElement && !image.complete) {
    await image.decode();
  }
  try {
    return await createImageBitmap(image, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
  } catch (e) {
    throw new Error(`cannot decode the image: ${e.message ?? e}`);
  }
}

function usage(answer) {
  const prompt = answer?.promptTokens ?? 0;
  const completion = answer?.tokens.length ?? 0;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export class Fusion {
  #worker;
  #pending = new Map(); // id → { resolve, reject, onText?, onProgress? }
  #photos = new WeakMap(); // image object → photo id (tile features are reused per photo)
  #photoUrls = new Map(); // image URL → photo id
  #stats = {};
  #manifestUrl;
  #workerUrl;
  /** Why the engine cannot go on (a lost GPU device, a crashed worker), until recovered. */
  #broken = null;
  #unloaded = false;
  info;

  constructor(manifestUrl, workerUrl) {
    this.#manifestUrl = manifestUrl;
    this.#workerUrl = workerUrl;
    this.#startWorker();
  }

  #startWorker() {
    const worker = new Worker(this.#workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' });
    // A replaced worker's last messages (its device-lost notice) must not reach the new one's requests.
    worker.onmessage = ({ data }) => worker === this.#worker && this.#receive(data);
    worker.onerror = (e) => worker === this.#worker && this.#fail(`the engine worker failed: ${e.message ?? e}`);
    this.#worker = worker;
  }

  /** Give up on the current worker: every pending request fails with `reason`. */
  #fail(reason) {
    this.#broken ??= reason;
    this.#failAll(new Error(reason));
  }

  /**
   * After a lost device or a crashed worker: a new worker, a new GPU device, and the model
   * uploaded again from the verified offline copy (no download). Photos are encoded again.
   */
  async #recover() {
    if (this.#broken === null) return;
    this.#worker.terminate();
    this.#startWorker();
    this.#photos = new WeakMap();
    this.#photoUrls.clear();
    const t0 = performance.now();
    this.info = await this.#request({ type: Msg.load, manifestUrl: this.#manifestUrl });
    this.#broken = null;
    this.#stats.recoveries = (this.#stats.recoveries ?? 0) + 1;
    this.#stats.recoveryMs = performance.now() - t0;
  }

  /**
   * Download (or reuse the verified offline copy of) a converted model and put it on the GPU.
   * @param {string} manifestUrl URL of the model's manifest.json
   * Weights load only from this page's origin or one listed in `allowedOrigins`; every shard
   * is pinned by the manifest's sha256.
   * @param {{ onProgress?: (p: {file: string, loaded: number, total: number, etaSeconds: number|null}) => void, signal?: AbortSignal, workerUrl?: string|URL, allowedOrigins?: string[] }} [options]
   */
  static async load(manifestUrl, { onProgress, signal, workerUrl, allowedOrigins = [] } = {}) {
    if (!('gpu' in navigator)) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
    const url = new URL(manifestUrl, location.href);
    if (url.origin !== location.origin && !allowedOrigins.includes(url.origin)) {
      throw new Error(
        `the model at ${url.href} is on ${url.origin}; models load only from this page's origin (${location.origin}) or an origin listed in allowedOrigins`,
      );
    }
    const model = new Fusion(url.href, workerUrl);
    const abort = () => {
      model.#worker.terminate();
      model.#failAll(signal.reason ?? new DOMException('loading was aborted', 'AbortError'));
    };
    signal?.throwIfAborted();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      const t0 = performance.now();
      model.info = await model.#request({ type: Msg.load, manifestUrl: url.href }, { onProgress });
      model.#stats.loadMs = performance.now() - t0;
      return model;
    } catch (e) {
      model.#worker.terminate();
      throw e;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /** Models cached for offline use in this origin (their manifest URLs). */
  static cached() {
    return cachedModels();
  }

  /** Delete a cached model. */
  static evict(manifestUrl) {
    return evictModel(new URL(manifestUrl, location.href).href);
  }

  /**
   * Ask about a photo (or, without `image`, a text-only question); yields the answer as it is
   * generated.
   * @param {{ image?: Blob|File|ImageBitmap|HTMLImageElement|HTMLCanvasElement|OffscreenCanvas|string|URL, question: string, history?: [string, string][], signal?: AbortSignal, maxNewTokens?: number, temperature?: number, topP?: number, seed?: number, stop?: string|string[], repetitionPenalty?: number, frequencyPenalty?: number, presencePenalty?: number, logprobs?: boolean, topLogprobs?: number, system?: string, latents?: number }} request
   */
  async *ask({
    image,
    question,
    history = [],
    signal,
    maxNewTokens,
    temperature,
    topP,
    seed,
    stop,
    repetitionPenalty,
    frequencyPenalty,
    presencePenalty,
    logprobs,
    topLogprobs,
    system,
    latents,
  }) {
    signal?.throwIfAborted();
    // The wasm boundary would take another type's text (`undefined` asked as "undefined").
    if (typeof question !== 'string') throw new TypeError(`question must be a string, got ${question === null ? 'null' : typeof question}`);
    if (system != null && typeof system !== 'string') throw new TypeError(`system must be a string, got ${typeof system}`);
    if (topLogprobs != null && !logprobs) throw new TypeError('topLogprobs needs logprobs: true');
    // Its range (0 to 20) is the engine's to check.
    if (topLogprobs != null && !Number.isInteger(topLogprobs)) throw new TypeError(`topLogprobs must be an integer, got ${topLogprobs}`);
    if (this.#unloaded) throw UNLOADED();
    await this.#recover();
    // Without a photo the question goes to the plain LLM (no vision work).
    const photo = image == null ? undefined : await this.#photo(image);
    const queue = [];
    let wake = null;
    let finished = false;
    let failure = null;
    const id = nextId++;
    const options = {
      max_new_tokens: maxNewTokens,
      temperature,
      top_p: topP,
      seed,
      stop: typeof stop === 'string' ? [stop] : stop,
      repetition_penalty: repetitionPenalty,
      frequency_penalty: frequencyPenalty,
      presence_penalty: presencePenalty,
      logprobs: logprobs ? (topLogprobs ?? 0) : undefined,
      system: system ?? undefined,
      latents,
    };
    const onAbort = () => this.#worker.postMessage({ type: Msg.abort, id });
    signal?.addEventListener('abort', onAbort, { once: true });
    const done = this.#request(
      { type: Msg.ask, photo, history, question, options },
      {
        id,
        onText: (piece) => {
          queue.push(piece);
          wake?.();
        },
      },
    )
      .then(
        (result) => {
          this.#stats.lastAnswer = result.stats;
          this.lastAnswer = result;
        },
        (e) => {
          failure = e;
        },
      )
      .finally(() => {
        finished = true;
        wake?.();
      });
    try {
      for (;;) {
        if (queue.length) {
          yield queue.shift();
        } else if (finished) {
          break;
        } else {
          await new Promise((r) => (wake = r));
          wake = null;
        }
      }
      await done;
      if (failure) throw failure;
      if (signal?.aborted) throw signal.reason ?? new DOMException('the answer was aborted', 'AbortError');
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!finished) onAbort(); // the caller stopped iterating: stop the GPU work too
    }
  }

  /**
   * OpenAI-style chat: `model.chat.completions.create({ messages, stream })`. A user message
   * carries the photo as an `image_url` part (an http(s) or data: URL); earlier user/assistant
   * turns become the history; system and developer messages, joined, take the place of the chat
   * template's system prompt. Only the newest image is used; without one, the plain LLM answers.
   */
  get chat() {
    return { completions: { create: (request) => this.#complete(request) } };
  }

  #complete(request = {}) {
    checkRequest(request);
    const {
      messages,
      stream = false,
      stream_options,
      max_tokens,
      max_completion_tokens,
      temperature,
      top_p,
      seed,
      stop,
      frequency_penalty,
      presence_penalty,
      repetition_penalty,
      logprobs,
      top_logprobs,
      signal,
    } = request;
    const { image, system, question, history } = toTurns(messages);
    const id = `chatcmpl-${nextId++}`;
    const created = Math.floor(Date.now() / 1000);
    const pieces = this.ask({
      image,
      system,
      question,
      history,
      signal,
      maxNewTokens: max_completion_tokens ?? max_tokens,
      temperature,
      topP: top_p,
      seed,
      stop: stop ?? undefined,
      frequencyPenalty: frequency_penalty,
      presencePenalty: presence_penalty,
      repetitionPenalty: repetition_penalty,
      logprobs,
      topLogprobs: top_logprobs,
    });
    // OpenAI's `choices[].logprobs`: null unless asked for. A stream gives the whole answer's
    // in its finishing chunk (the text chunks have null): the engine's text pieces do not
    // follow token boundaries.
    const logprobsOf = (answer) => (logprobs ? { content: answer?.logprobs ?? [] } : null);
    const finish = () => (['end_of_turn', 'stop_sequence'].includes(this.lastAnswer?.stop) ? 'stop' : 'length');
    if (stream) {
      const model = this;
      // As OpenAI's: with `stream_options.include_usage`, every chunk has `usage: null` and one
      // more chunk, with no choices, carries the usage.
      const withUsage = stream_options?.include_usage === true;
      const chunk = (choices) => ({
        id,
        object: 'chat.completion.chunk',
        created,
        model: 'fusion',
        choices,
        ...(withUsage && { usage: null }),
      });
      return (async function* () {
        for await (const content of pieces)
          yield chunk([{ index: 0, delta: { role: 'assistant', content }, logprobs: null, finish_reason: null }]);
        yield chunk([{ index: 0, delta: {}, logprobs: logprobsOf(model.lastAnswer), finish_reason: finish() }]);
        if (withUsage) yield { ...chunk([]), usage: usage(model.lastAnswer) };
      })();
    }
    return (async () => {
      let content = '';
      for await (const piece of pieces) content += piece;
      return {
        id,
        object: 'chat.completion',
        created,
        model: 'fusion',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: content.trim() },
            logprobs: logprobsOf(this.lastAnswer),
            finish_reason: finish(),
          },
        ],
        usage: usage(this.lastAnswer),
      };
    })();
  }

  /** Per-phase timings of the last load, photo and answer. */
  stats() {
    return structuredClone(this.#stats);
  }

  /**
   * Destroy the engine's GPU device, as a driver reset would: the answer in progress fails
   * with a clear error and the next `ask` recovers. For testing an app's recovery path.
   */
  async loseDevice() {
    // The loss notice may overtake the reply and fail this request too: that is the point.
    await this.#request({ type: Msg.loseDevice }).catch((e) => {
      if (this.#broken === null) throw e;
    });
  }

  /** Stop the worker and free the GPU memory. The offline copy stays cached. */
  unload() {
    this.#unloaded = true;
    this.#worker.terminate();
    this.#failAll(new Error('the model was unloaded'));
  }

  async #photo(image) {
    if (image instanceof URL) image = image.href;
    const cache = typeof image === 'string' ? this.#photoUrls : this.#photos;
    const key = typeof image === 'string' || (typeof image === 'object' && image !== null) ? image : null;
    if (key && cache.has(key)) return cache.get(key);
    const bitmap = image instanceof ImageBitmap ? image : await toBitmap(image);
    const { photo, ms } = await this.#request({ type: Msg.photo, bitmap }, { transfer: [bitmap] });
    this.#stats.photo = ms;
    this.#stats.photosEncoded = (this.#stats.photosEncoded ?? 0) + 1;
    if (key) cache.set(key, photo);
    return photo;
  }

  #request(message, { id = nextId++, onText, onProgress, transfer = [] } = {}) {
    if (this.#unloaded) return Promise.reject(UNLOADED());
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onText, onProgress });
      this.#worker.postMessage({ ...message, id }, transfer);
    });
  }

  #receive(data) {
    if (data.type === Msg.deviceLost) {
      // Fail what is pending now: a request stuck on the dead device would never answer.
      this.#fail(`the GPU device was lost (${data.reason}); the next request reloads the model onto a new device`);
      return;
    }
    if (data.type === Msg.error && data.fatal) this.#broken ??= data.message;
    const p = this.#pending.get(data.id);
    if (!p) return;
    switch (data.type) {
      case Msg.progress:
        p.onProgress?.({ file: data.file, loaded: data.loaded, total: data.total, etaSeconds: data.etaSeconds });
        break;
      case Msg.text:
        p.onText?.(data.piece);
        break;
      case Msg.error:
        this.#pending.delete(data.id);
        p.reject(new Error(data.message));
        break;
      default: // loaded, photo, done
        this.#pending.delete(data.id);
        p.resolve(data.type === Msg.loaded ? data.info : data.type === Msg.done ? data.result : data);
    }
  }

  #failAll(error) {
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}

export default Fusion;
