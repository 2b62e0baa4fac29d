/** Loading progress over the whole model (all shards). */
export interface LoadProgress {
  /** The shard being fetched or verified. */
  file: string;
  /** Bytes present and verified so far. */
  loaded: number;
  /** Bytes of the whole model. */
  total: number;
  /** Seconds left at the current download rate; `null` before it is known. */
  etaSeconds: number | null;
}

export interface LoadOptions {
  onProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
  /** Where the engine worker is served from (default: `worker.js` next to this module). */
  workerUrl?: string | URL;
  /**
   * Origins besides the page's own that models may load from (e.g. `["https://cdn.example"]`;
   * the server must allow CORS). Anything else is refused before a byte is fetched.
   */
  allowedOrigins?: string[];
}

export type ImageInput = Blob | File | ImageBitmap | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas | string | URL;

export interface AskRequest {
  /**
   * The photo asked about. Without one the question goes to the plain language model (no
   * vision work; FUSION's own reference answers only about a photo).
   */
  image?: ImageInput;
  question: string;
  /** Earlier `[question, answer]` turns about the same photo (or without one). */
  history?: [string, string][];
  signal?: AbortSignal;
  /** Default 512. */
  maxNewTokens?: number;
  /** 0 (default) is greedy decoding; more samples, with `topP` and `seed`. */
  temperature?: number;
  /** Nucleus sampling: draw among the most likely tokens that make up this much of the
   *  probability, 0 to 1 (default 1: every token). Outside that range the answer fails. */
  topP?: number;
  seed?: number;
  /** End the answer before the first of these texts; it is not part of the answer. */
  stop?: string | string[];
  /**
   * Hugging Face's penalty for tokens the answer already holds (its own, not the prompt's):
   * more than 0, 1 (default) is none; divides a positive logit, multiplies a negative one.
   * Any penalty makes greedy decoding pick on the CPU from the read-back logits.
   */
  repetitionPenalty?: number;
  /** OpenAI's: −2 to 2 (default 0), subtracted from a token's logit per time the answer holds it. */
  frequencyPenalty?: number;
  /** OpenAI's: −2 to 2 (default 0), subtracted once from the logit of each token the answer holds. */
  presencePenalty?: number;
  /**
   * Report each answer token's log-probability in {@link Answer.logprobs}: of the softmax of
   * the logits after the penalties, before temperature and top-p (the model's, whatever the
   * sampling). Greedy decoding then picks on the CPU from the read-back logits.
   */
  logprobs?: boolean;
  /** With `logprobs`: also the 0 (default) to 20 most likely tokens at each step. */
  topLogprobs?: number;
  /**
   * A system prompt in place of the chat template's (default: the template's, which FUSION was
   * tuned with). Part of the first turn: asking a follow-up under another one rebuilds the
   * conversation under it.
   */
  system?: string;
  /** Latent tokens (a perfect square: 4, 16, 36, 64, 144). */
  latents?: number;
}

export interface AnswerStats {
  /** The question-guided vision tower and sequence assembly (0 for a follow-up; without a photo, the prompt's embedding alone). */
  visionMs: number;
  /** The decoder over the prompt, until the first token is picked. */
  prefillMs: number;
  /** Until the first piece of text reached the page. */
  firstTokenMs: number | null;
  totalMs: number;
  decodeTokensPerSecond: number | null;
  promptTokens: number;
  /**
   * Follow-ups left out of the conversation's context so far to make room for new ones (the
   * oldest first; the photo's first turn is always kept).
   */
  droppedTurns: number;
  /**
   * Whether the earlier turns were prefilled again before this answer (a history that is not
   * the engine's current conversation, turns dropped to make room, a new system prompt, or
   * after a failed answer): a follow-up otherwise prefills only its own turn.
   */
  rebuilt: boolean;
  /**
   * How the decode steps ran: `recorded` (the first step recorded, the others replayed it),
   * `launched` (every kernel launched each step), or why the recording was refused.
   */
  decodePath: string;
  /** GPU memory the engine's tensors use after the answer (weights, KV cache, photos). */
  gpuBytesInUse: number;
  /** The engine's wasm memory after the answer (it only grows: its peak so far). */
  wasmBytes: number;
}

/** A token as OpenAI's `logprobs.content` gives it. */
export interface TokenLogprob {
  /** The token's text (its `bytes` as UTF-8; a token may hold part of a character). */
  token: string;
  /** Natural log; -9999 for a token the model gives (almost) no probability. */
  logprob: number;
  bytes: number[];
}

export interface Answer {
  text: string;
  tokens: number[];
  /** One per token when asked for (`logprobs`), with `top_logprobs` most likely first; else null. */
  logprobs: (TokenLogprob & { top_logprobs: TokenLogprob[] })[] | null;
  promptTokens: number;
  stop: 'end_of_turn' | 'stop_sequence' | 'length' | 'cancelled';
  stats: AnswerStats;
}

export interface Stats {
  loadMs?: number;
  /** Decoding the last photo in the browser, and encoding its tiles on the GPU. */
  photo?: { decode: number; tiles: number };
  photosEncoded?: number;
  lastAnswer?: AnswerStats;
  /** Times the engine recovered from a lost GPU device or a crashed worker, and the last one's ms. */
  recoveries?: number;
  recoveryMs?: number;
}

export interface ModelInfo {
  bytes: number;
  /**
   * Bytes this load checked against the manifest's sha256: each shard once when it is
   * downloaded, and again only if its cached file changed since (0 for a model loaded again).
   */
  hashedBytes: number;
  /** Making the offline copy whole and verified: downloads and sha256 checks. */
  downloadMs: number;
  uploadMs: number;
  /** The engine's wasm memory (its peak: it never shrinks) and the worker's JS heap, if known. */
  memory: { wasmBytes: number; workerHeapBytes: number | null };
  /**
   * What the engine's kernels use beyond WebGPU's baseline, where the GPU has it: `shader-f16`
   * (the int4 GEMM of prefill and the vision tower in f16) and `subgroups` (the reduction of
   * the int4 matvec of every decode step).
   */
  gpu: { f16: boolean; subgroups: boolean };
  config: Record<string, unknown>;
}

export type ChatContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } | string };

/**
 * A chat message. Only a user message may carry an image; the text of the system and developer
 * messages, joined, is the system prompt (see {@link AskRequest.system}).
 */
export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string | ChatContentPart[];
}

/**
 * OpenAI's request. `n` (other than 1), `logit_bias`, `tools`, `tool_choice`, `functions`,
 * `function_call` and a `response_format` other than text are refused with a TypeError:
 * FUSION answers with one message of text.
 */
export interface ChatRequest {
  messages: ChatMessage[];
  stream?: boolean;
  /** With `stream: true` only. `include_usage`: one more chunk, with no choices, carries the usage. */
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number;
  /** The newer name of `max_tokens`; wins over it. */
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stop?: string | string[] | null;
  frequency_penalty?: number;
  presence_penalty?: number;
  /** Not OpenAI's: Hugging Face's, as WebLLM also takes it ({@link AskRequest.repetitionPenalty}). */
  repetition_penalty?: number;
  /** {@link AskRequest.logprobs}; in a stream, the finishing chunk carries the whole answer's. */
  logprobs?: boolean;
  /** 0 to 20, with `logprobs: true`. */
  top_logprobs?: number;
  signal?: AbortSignal;
}

export interface ChatLogprobs {
  content: NonNullable<Answer['logprobs']>;
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: 0; message: { role: 'assistant'; content: string }; logprobs: ChatLogprobs | null; finish_reason: 'stop' | 'length' }[];
  usage: ChatUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  /** Empty in the usage chunk (`stream_options.include_usage`). */
  choices: {
    index: 0;
    delta: { role?: 'assistant'; content?: string };
    logprobs: ChatLogprobs | null;
    finish_reason: 'stop' | 'length' | null;
  }[];
  /** With `stream_options.include_usage`: null but in the last chunk. */
  usage?: ChatUsage | null;
}

export declare class Fusion {
  /** Download (or reuse the verified offline copy of) a converted model and put it on the GPU. */
  static load(manifestUrl: string | URL, options?: LoadOptions): Promise<Fusion>;
  /** Manifest URLs of the models cached in this origin. */
  static cached(): Promise<string[]>;
  /** Delete a cached model. */
  static evict(manifestUrl: string | URL): Promise<void>;
  readonly info: ModelInfo;
  /** The last finished answer. */
  readonly lastAnswer?: Answer;
  /**
   * Ask about a photo; yields the answer's text as it is generated. An answer that fails
   * throws, and its question is not a turn: the next `ask` goes on from the turns before it.
   */
  ask(request: AskRequest): AsyncGenerator<string, void, undefined>;
  /** OpenAI-style chat completions; a user message carries the photo as `image_url` (the newest is used; none: the plain LLM answers). */
  readonly chat: {
    completions: {
      create(request: ChatRequest & { stream: true }): AsyncIterable<ChatCompletionChunk>;
      create(request: ChatRequest & { stream?: false }): Promise<ChatCompletion>;
    };
  };
  /** Per-phase timings. */
  stats(): Stats;
  /**
   * Destroy the engine's GPU device, as a driver reset would: the answer in progress fails
   * with a clear error and the next `ask` recovers (new device, weights re-uploaded from the
   * verified offline copy). For testing an app's recovery path.
   */
  loseDevice(): Promise<void>;
  /** Stop the engine and free its GPU memory; the offline copy stays cached. */
  unload(): void;
}

export default Fusion;
