//! Question answering end to end: a loaded model and tokenizer, photos encoded once, and
//! answers streamed token by token. The CLI and the wasm API both drive this.

use crate::config::OneOrMany;
use crate::error::Result;
use crate::generate::{Sampler, SamplingOptions, StopText, TokenLogprob};
use crate::gpu::{now_ms, read_f32};
use crate::image::Views;
use crate::kernels::argmax::{self, Pick};
use burn::tensor::Tensor;

use crate::model::{FusionModel, ImageContext, KvCache, Prompt, VisionOptions};
use crate::tokenizer::Tokenizer;

/// A photo with its question-independent features (the tile grid), reused by every question.
pub struct Photo {
    pub views: Views,
    pub context: ImageContext,
}

impl Photo {
    /// What the model's prefill takes of it.
    fn image(&self) -> (&Views, &ImageContext) {
        (&self.views, &self.context)
    }
}

#[derive(Clone, Debug, Default)]
pub struct AskOptions {
    pub sampling: SamplingOptions,
    /// Latent tokens Q (a perfect square); `None` takes the config's default.
    pub latents: Option<usize>,
    /// FUSION-L: the image-token grid side after reduction (`None`: all N tokens).
    pub reduced_side: Option<usize>,
    /// A system prompt in place of the chat template's (`None`: the template's). It is part of
    /// a conversation's first turn: a question asked with another one rebuilds the cache.
    pub system: Option<String>,
}

impl AskOptions {
    fn vision(&self, config: &crate::config::FusionConfig) -> VisionOptions {
        VisionOptions {
            latents: self.latents.unwrap_or_else(|| config.default_latents()),
            reduced_side: self.reduced_side,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A stop token was generated.
    EndOfTurn,
    /// The answer reached one of [`SamplingOptions::stop`].
    StopSequence,
    /// `max_new_tokens` or the context was reached.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

/// Where an answer's time went, in milliseconds of GPU-complete work.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// The question-guided vision tower, pooling and sequence assembly (0 for a follow-up).
    pub vision_ms: f64,
    /// The decoder over the prompt, until the first token is picked.
    pub prefill_ms: f64,
    /// Every later token.
    pub decode_ms: f64,
}

#[derive(Clone, Debug)]
pub struct Answer {
    pub text: String,
    pub tokens: Vec<u32>,
    /// One per token, when [`SamplingOptions::logprobs`] asked for them.
    pub logprobs: Vec<TokenLogprob>,
    pub prompt_tokens: usize,
    pub stop: StopReason,
    pub timings: Timings,
}

pub struct Engine {
    pub model: FusionModel,
    pub tokenizer: Tokenizer,
    stop_ids: Vec<u32>,
}

impl Engine {
    /// `generation_config` is the checkpoint's `generation_config.json`, when it has one.
    ///
    /// [OPEN §10.7] Stop tokens: the union of `generation_config.eos_token_id`, the config's
    /// `eos_token_id` and the chat template's end-of-turn token. The reference stops only on the
    /// first list; if a checkpoint kept just `<|endoftext|>` it would run past `<|end|>`.
    pub fn new(model: FusionModel, tokenizer: Tokenizer, generation_config: Option<&str>) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct GenerationConfig {
            #[serde(default)]
            eos_token_id: Option<OneOrMany>,
        }
        let mut stop_ids = model.config.eos_ids();
        if let Some(text) = generation_config {
            let g: GenerationConfig = serde_json::from_str(text)
                .map_err(|e| crate::Error::invalid("generation_config.json", e.to_string()))?;
            stop_ids.extend(g.eos_token_id.as_ref().map(OneOrMany::to_vec).unwrap_or_default());
        }
        stop_ids.extend(tokenizer.end_of_turn());
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(Self { model, tokenizer, stop_ids })
    }

    /// Load a checkpoint directory (config, safetensors, tokenizer, generation config).
    #[cfg(not(target_family = "wasm"))]
    pub fn load(dir: &std::path::Path, gpu: &crate::Gpu, format: crate::model::WeightFormat) -> Result<Self> {
        Self::load_reporting(dir, gpu, format, &mut |_, _| {})
    }

    /// [`Self::load`], reporting the tensors loaded ([`FusionModel::load_reporting`]).
    #[cfg(not(target_family = "wasm"))]
    pub fn load_reporting(
        dir: &std::path::Path,
        gpu: &crate::Gpu,
        format: crate::model::WeightFormat,
        report: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let model = FusionModel::load_reporting(dir, gpu, format, report)?;
        let backbone = model.config.model_type;
        // A converted model names its tokenizer and carries its generation config in its
        // manifest (already verified by the model load: only the manifest is read here).
        let manifest = dir.join("manifest.json");
        let (tokenizer, generation) = match std::fs::read_to_string(&manifest) {
            Ok(text) => {
                let manifest = crate::manifest::Manifest::from_json(&text)?;
                let path = dir.join(manifest.tokenizer.as_deref().unwrap_or(crate::tokenizer::TOKENIZER_FILE));
                let bytes = std::fs::read(&path).map_err(|e| crate::error::Error::io(&path, e))?;
                (Tokenizer::from_bytes(&bytes, backbone)?, manifest.generation_config.map(|v| v.to_string()))
            }
            Err(_) => {
                (Tokenizer::load(dir, backbone)?, std::fs::read_to_string(dir.join("generation_config.json")).ok())
            }
        };
        Self::new(model, tokenizer, generation.as_deref())
    }

    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    pub fn encode_photo(&self, views: Views) -> Result<Photo> {
        let context = self.model.encode_image(&views)?;
        Ok(Photo { views, context })
    }

    pub fn new_conversation(&self) -> Conversation {
        Conversation {
            cache: self.model.new_cache(),
            system: None,
            photo_prompt: 0,
            pending: Vec::new(),
            asked: Vec::new(),
            kept: Vec::new(),
            dropped: 0,
            rebuilds: 0,
            stale: false,
        }
    }

    /// A conversation rebuilt from earlier `(question, answer)` turns about `photo` (or about
    /// none), as if they had been asked here: the first turn's full prefill, then the later
    /// turns appended — as many of the newest as fit with room for one more question and answer
    /// ([`Engine::fit`]).
    pub fn resume(
        &self,
        photo: Option<&Photo>,
        history: &[(String, String)],
        options: &AskOptions,
    ) -> Result<Conversation> {
        self.rebuild(photo, history, "", options, None)
    }

    /// `conversation` (from another engine: the same model on a device that was lost) rebuilt
    /// here from the turns it holds, remembering every question it was asked.
    pub fn replay(
        &self,
        photo: Option<&Photo>,
        conversation: &Conversation,
        options: &AskOptions,
    ) -> Result<Conversation> {
        let mut replayed = self.resume(photo, &conversation.kept, options)?;
        replayed.asked = conversation.asked.clone();
        replayed.dropped += conversation.dropped;
        Ok(replayed)
    }

    /// [`Engine::resume`], keeping room for `next` (a question about to be asked).
    ///
    /// `photo_prompt`: a KV cache that starts with the first turn's prompt (the photo's image
    /// tokens and latents, the first question) and how many positions that prompt takes. Those
    /// rows are kept rather than computed again: dropping follow-ups leaves them a prefix of the
    /// context, and their prefill (the question-guided vision tower included) was most of a
    /// rebuild's cost: the browser soak's rebuilds went from 22.8 to 7.1 s (RELIABILITY.md).
    fn rebuild(
        &self,
        photo: Option<&Photo>,
        history: &[(String, String)],
        next: &str,
        options: &AskOptions,
        photo_prompt: Option<(KvCache, usize)>,
    ) -> Result<Conversation> {
        let mut conversation = Conversation { system: options.system.clone(), ..self.new_conversation() };
        let Some(((first, _), later)) = history.split_first() else { return Ok(conversation) };
        let dropped = self.fit(photo, history, next, options)?;
        let vision = options.vision(&self.model.config);
        let prompt = self.first_prompt(photo, first, options)?;
        match photo_prompt {
            // Only with the vision options it was made with (they set its length).
            Some((mut cache, len)) if len == self.model.sequence_len(&prompt, vision)? => {
                cache.truncate(len);
                conversation.cache = cache;
            }
            _ => {
                self.model.prefill(&prompt, photo.map(Photo::image), vision, &mut conversation.cache, None).map(drop)?
            }
        }
        conversation.photo_prompt = conversation.cache.len();
        let mut ids = self.tokenizer.continuation(&history[0].1)?;
        for (question, answer) in &later[dropped..] {
            ids.extend(self.tokenizer.follow_up(question)?);
            ids.extend(self.tokenizer.continuation(answer)?);
        }
        if !ids.is_empty() {
            let prompt = Prompt { ids: ids.into_iter().map(i64::from).collect(), instructs: Vec::new() };
            self.model.prefill(&prompt, None, vision, &mut conversation.cache, None)?;
        }
        conversation.asked = history.iter().map(|(q, _)| q.trim().to_owned()).collect();
        conversation.kept = std::iter::once(history[0].clone()).chain(later[dropped..].iter().cloned()).collect();
        conversation.dropped = dropped;
        Ok(conversation)
    }

    /// The context policy: how many of the oldest follow-up turns of `history` to leave out so
    /// that the rest, then `question` and room for its answer, fit the model's context.
    ///
    /// The first turn (the photo's image tokens and latents, its question and answer) anchors
    /// the conversation and is never left out. When the turns do not fit, the oldest follow-ups
    /// go until the rest use at most half the context the first turn leaves free; when the first
    /// turn and the new question alone do not fit, this is an error naming the sizes. The room
    /// kept for the answer is [`ANSWER_ROOM`] tokens (or `max_new_tokens`, if smaller); an
    /// answer that still reaches the end of the context stops there with [`StopReason::Length`].
    pub fn fit(
        &self,
        photo: Option<&Photo>,
        history: &[(String, String)],
        question: &str,
        options: &AskOptions,
    ) -> Result<usize> {
        let Some(((first_q, first_a), later)) = history.split_first() else { return Ok(0) };
        let max = self.model.config.max_context();
        let first = self
            .model
            .sequence_len(&self.first_prompt(photo, first_q, options)?, options.vision(&self.model.config))?
            + self.tokenizer.continuation(first_a)?.len();
        let turn = |q: &str, a: &str| -> Result<usize> {
            Ok(self.tokenizer.follow_up(q)?.len() + self.tokenizer.continuation(a)?.len())
        };
        let ask = if question.is_empty() { 0 } else { turn(question, "")? }
            + ANSWER_ROOM.min(options.sampling.max_new_tokens);
        let later = later.iter().map(|(q, a)| turn(q, a)).collect::<Result<Vec<_>>>()?;
        if first + ask > max {
            return Err(crate::Error::invalid(
                "conversation",
                format!(
                    "the {}first turn ({first} positions) and the new question with room for its answer ({ask}) exceed the model's context of {max}",
                    if photo.is_some() { "photo's " } else { "" }
                ),
            ));
        }
        let mut total = first + ask + later.iter().sum::<usize>();
        if total <= max {
            return Ok(0);
        }
        // Trim to half the room the follow-ups may use, so the next questions fit without
        // another rebuild (each rebuild is a full prefill).
        let target = first + ask + (max - first - ask) / 2;
        let mut dropped = 0;
        while total > target {
            total -= later[dropped];
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Answer `question` about `photo` in `conversation` (the same photo at every question of
    /// a conversation; `None` for one without a photo, answered by the plain LLM). The first
    /// question about a photo runs FUSION's whole prefill (question-guided vision, latents,
    /// interaction layers); a follow-up appends only its own turn to the KV cache and runs no
    /// vision work. `on_text` receives each new piece of text and returns `false` to stop.
    ///
    /// [§10.11] The reference re-sends the whole conversation each turn, re-encoding the photo
    /// with all questions joined. Reusing the KV cache answers follow-ups without re-reading the
    /// photo for the new question; the photo's tile features and the first turn's image and
    /// latent tokens stay in context.
    ///
    /// A question that fails is not a turn: the next one rebuilds the cache from the turns
    /// kept (one prefill), since the failure may have left part of this one in the cache, or,
    /// after a GPU failure, a cache that can no longer be read.
    pub async fn ask(
        &self,
        conversation: &mut Conversation,
        photo: Option<&Photo>,
        question: &str,
        options: &AskOptions,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<Answer> {
        options.sampling.check()?;
        let new_system = !conversation.kept.is_empty() && conversation.system != options.system;
        if conversation.stale || new_system || self.out_of_room(conversation, question, options)? {
            // Rebuild the cache from the newest turns that fit (one prefill), on the photo's
            // prompt as cached unless a failed question left the cache unreadable or the
            // system prompt before it changed. Stale until done: a rebuild that fails leaves
            // the next question a rebuild from scratch.
            let photo_prompt = (!conversation.stale && !new_system && conversation.photo_prompt > 0).then(|| {
                (std::mem::replace(&mut conversation.cache, self.model.new_cache()), conversation.photo_prompt)
            });
            conversation.stale = true;
            let rebuilt = self.rebuild(photo, &conversation.kept, question, options, photo_prompt)?;
            *conversation = Conversation {
                asked: std::mem::take(&mut conversation.asked),
                dropped: conversation.dropped + rebuilt.dropped,
                rebuilds: conversation.rebuilds + 1,
                ..rebuilt
            };
        }
        let cache = &mut conversation.cache;
        let before = cache.len();
        let start = now_ms();
        let embedded = if conversation.kept.is_empty() {
            conversation.system = options.system.clone();
            let prompt = self.first_prompt(photo, question, options)?;
            let embedded = self.model.embed_prompt(
                &prompt,
                photo.map(Photo::image),
                options.vision(&self.model.config),
                cache,
                None,
            )?;
            self.model.gpu().sync().await?;
            embedded
        } else {
            let ids = conversation
                .pending
                .iter()
                .copied()
                .chain(self.tokenizer.follow_up(question)?)
                .map(i64::from)
                .collect();
            self.model.embed_prompt(
                &Prompt { ids, instructs: Vec::new() },
                None,
                VisionOptions { latents: 0, reduced_side: None },
                cache,
                None,
            )?
        };
        let vision_ms = now_ms() - start;
        // From here until the answer is complete the cache holds part of this turn.
        conversation.stale = true;
        let logits = self.model.run_decoder(embedded, cache, None)?;
        if conversation.kept.is_empty() {
            conversation.photo_prompt = cache.len();
        }
        let prompt_tokens = cache.len() - before;
        let (answer, pending, prefill_ms) = self.generate(cache, logits, options, on_text).await?;
        conversation.pending = pending;
        conversation.stale = false;
        conversation.asked.push(question.trim().to_owned());
        conversation.kept.push((question.trim().to_owned(), answer.text.clone()));
        let timings = Timings { vision_ms, prefill_ms, decode_ms: now_ms() - start - vision_ms - prefill_ms };
        Ok(Answer { prompt_tokens, timings, ..answer })
    }

    /// The prompt of a conversation's first question: about `photo`, or, without one, the plain
    /// LLM's (`Tokenizer::text_prompt`, [OPEN §10.10]), under the options' system prompt.
    fn first_prompt(&self, photo: Option<&Photo>, question: &str, options: &AskOptions) -> Result<Prompt> {
        let system = options.system.as_deref();
        match photo {
            Some(_) => self.tokenizer.image_prompt(question, system),
            None => self.tokenizer.text_prompt(question, system),
        }
    }

    /// Whether a follow-up `question` and room for its answer no longer fit after the cached turns.
    fn out_of_room(&self, conversation: &Conversation, question: &str, options: &AskOptions) -> Result<bool> {
        if conversation.kept.is_empty() {
            return Ok(false);
        }
        let follow_up = conversation.pending.len()
            + self.tokenizer.follow_up(question)?.len()
            + ANSWER_ROOM.min(options.sampling.max_new_tokens);
        Ok(conversation.cache.len() + follow_up > self.model.config.max_context())
    }

    /// Sample until a stop token, a stop sequence, the token budget or the context ends, or
    /// `on_text` says stop. Returns the answer, its tokens that are not in the cache (the next
    /// turn's prompt starts with them), and the time until the first token was picked.
    ///
    /// Greedy answers decode one step ahead of the CPU: the step for a token picked on the GPU
    /// is queued before that token is read back, so the GPU decodes while the CPU waits for the
    /// read, checks the token and streams its text. A step so made for a token that ends the
    /// answer is taken back out of the cache (one step of GPU work per answer is wasted).
    ///
    /// An answer cut at a stop sequence (or cancelled while text that may start one is held
    /// back) leaves the cache as it was before the answer, and its text (most often cut in the
    /// middle of a token) to be encoded at the start of the next turn: the cache then holds what
    /// a conversation rebuilt from its turns would hold.
    async fn generate(
        &self,
        cache: &mut KvCache,
        logits: Tensor<1>,
        options: &AskOptions,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<(Answer, Vec<u32>, f64)> {
        let start = now_ms();
        let max_new = options.sampling.max_new_tokens;
        let before = cache.len();
        let mut sampler = Sampler::new(options.sampling.clone());
        let mut next = self.pick(&mut sampler, logits).await?;
        let mut first_ms = None;
        let (mut tokens, mut logprobs) = (Vec::new(), Vec::new());
        let mut stream = self.tokenizer.text_stream();
        let mut text = StopText::new(&options.sampling.stop);
        let mut pending = None;
        let mut stop = loop {
            if tokens.len() >= max_new || cache.len() + 1 >= self.model.config.max_context() {
                break StopReason::Length;
            }
            // The step the token will need unless it ends the answer, queued now when the GPU
            // picked it.
            let ahead = match &next {
                Next::OnGpu(pick) if tokens.len() + 1 < max_new => {
                    Some(argmax::pick(self.model.gpu(), self.model.decode_pick(pick, cache)?)?)
                }
                _ => None,
            };
            let (token, logprob) = next.token().await?;
            first_ms.get_or_insert(now_ms() - start);
            let mut take_back = || {
                if ahead.is_some() {
                    cache.truncate(cache.len() - 1)
                }
            };
            if self.stop_ids.contains(&token) {
                take_back();
                break StopReason::EndOfTurn;
            }
            tokens.push(token);
            logprobs.extend(logprob);
            sampler.accept(token);
            pending = Some(token);
            if let Some(piece) = stream.next(&tokens)? {
                let (shown, ended) = text.push(&piece);
                if ended {
                    if !shown.is_empty() {
                        on_text(&shown);
                    }
                    break StopReason::StopSequence;
                }
                if !shown.is_empty() && !on_text(&shown) {
                    take_back();
                    break StopReason::Cancelled;
                }
            }
            if tokens.len() >= max_new {
                break StopReason::Length;
            }
            next = match ahead {
                Some(pick) => Next::OnGpu(pick),
                None => self.pick(&mut sampler, self.model.decode(token, cache)?).await?,
            };
            pending = None;
        };
        // Text not streamed yet: a last character whose bytes never all came (cut by the token
        // budget), as U+FFFD as in the answer's text decoded at once. It may end at a stop
        // sequence too.
        if matches!(stop, StopReason::Length | StopReason::EndOfTurn) {
            let (shown, ended) = text.push(&stream.rest(&tokens)?);
            if !shown.is_empty() {
                on_text(&shown);
            }
            if ended {
                stop = StopReason::StopSequence;
            }
        }
        // The answer is the text shown. A cancelled answer holding text back (a possible stop
        // sequence's start) is cut there, as at a stop sequence: the caller never saw that text.
        let (answer, pending) =
            if stop == StopReason::StopSequence || (stop == StopReason::Cancelled && text.holds_back()) {
                cache.truncate(before);
                let answer = text.shown().trim().to_owned();
                let pending = self.tokenizer.continuation(&answer)?;
                (answer, pending)
            } else {
                // Text held back as a possible stop sequence's start is the answer's after all.
                let rest = text.finish();
                if !rest.is_empty() {
                    on_text(&rest);
                }
                (self.tokenizer.decode(&tokens)?.trim().to_owned(), pending.into_iter().collect())
            };
        Ok((
            Answer { text: answer, tokens, logprobs, prompt_tokens: 0, stop, timings: Timings::default() },
            pending,
            first_ms.unwrap_or(now_ms() - start),
        ))
    }

    /// The next token: greedy on the GPU, left there for the next step and read back 8 bytes
    /// (`kernels::argmax`); otherwise picked on the CPU from the whole vocabulary's logits, after
    /// the penalties for the tokens picked so far (with its log-probability, if asked for).
    async fn pick(&self, sampler: &mut Sampler, logits: Tensor<1>) -> Result<Next> {
        if sampler.is_greedy() {
            return Ok(Next::OnGpu(argmax::pick(self.model.gpu(), logits)?));
        }
        let mut logits = read_f32(logits).await?;
        sampler.penalise(&mut logits);
        let token = sampler.pick(&logits);
        Ok(Next::Sampled(token, sampler.logprob(&logits, token)))
    }

    /// An answer's [`Answer::logprobs`] as OpenAI's `logprobs.content`: for each token its text,
    /// UTF-8 bytes (a token may hold part of a character), log-probability and `top_logprobs`.
    pub fn logprobs_json(&self, answer: &Answer) -> serde_json::Value {
        let entry = |token: u32, logprob: f32| {
            let bytes = self.tokenizer.token_bytes(token);
            // JSON has no -inf: as OpenAI, -9999 for a token the model gives (almost) no probability.
            serde_json::json!({ "token": String::from_utf8_lossy(&bytes), "logprob": logprob.max(-9999.0), "bytes": bytes })
        };
        answer
            .logprobs
            .iter()
            .map(|t| {
                let mut e = entry(t.token, t.logprob);
                e["top_logprobs"] = t.top.iter().map(|&(token, logprob)| entry(token, logprob)).collect();
                e
            })
            .collect()
    }
}

/// An answer's next token, as [`Engine::pick`] made it.
enum Next {
    /// Picked on the GPU, its read back under way.
    OnGpu(Pick),
    Sampled(u32, Option<TokenLogprob>),
}

impl Next {
    async fn token(self) -> Result<(u32, Option<TokenLogprob>)> {
        match self {
            Next::OnGpu(pick) => Ok((pick.token().await?, None)),
            Next::Sampled(token, logprob) => Ok((token, logprob)),
        }
    }
}

/// Tokens kept free for an answer when deciding whether a question still fits the context.
pub const ANSWER_ROOM: usize = 64;

/// A conversation about one photo (or none): the KV cache of every turn it still holds.
pub struct Conversation {
    cache: KvCache,
    /// The system prompt its first turn was asked under ([`AskOptions::system`]).
    system: Option<String>,
    /// Positions of the first turn's prompt (photo and question) at the start of the cache; 0
    /// before the first question.
    photo_prompt: usize,
    /// The last answer's tokens not yet in the cache: its final token, sampled after the last
    /// step, or, for an answer cut at a stop sequence, its whole text.
    pending: Vec<u32>,
    /// Every question asked, in order (to recognise the conversation a caller continues).
    asked: Vec<String>,
    /// The `(question, answer)` turns in the cache: the first, then the newest that fit.
    kept: Vec<(String, String)>,
    /// Follow-up turns left out to stay within the context ([`Engine::fit`]).
    dropped: usize,
    /// Times [`Engine::ask`] rebuilt the cache from `kept`.
    rebuilds: usize,
    /// The last question failed: the cache is rebuilt from `kept` before the next one.
    stale: bool,
}

impl Conversation {
    /// How its last decode step ran ([`KvCache::decode_path`]).
    pub fn decode_path(&self) -> &str {
        self.cache.decode_path()
    }

    /// Every question asked, in order, including those no longer in the context.
    pub fn questions(&self) -> &[String] {
        &self.asked
    }

    /// Follow-up turns left out of the context so far.
    pub fn dropped_turns(&self) -> usize {
        self.dropped
    }

    /// Times a question rebuilt its cache from the turns kept (one prefill of them all): to
    /// make room, after a failed question, or under another system prompt. Any other follow-up
    /// prefills only its own turn.
    pub fn rebuilds(&self) -> usize {
        self.rebuilds
    }

    /// Make the next rebuild prefill the photo's prompt again instead of keeping its cached
    /// rows, as after a failure (for tests comparing the two).
    #[doc(hidden)]
    pub fn forget_photo_prompt(&mut self) {
        self.photo_prompt = 0;
    }

    /// Positions in the KV cache.
    pub fn context_len(&self) -> usize {
        self.cache.len()
    }
}
