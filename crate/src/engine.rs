//! Question answering end to end: a loaded model and tokenizer, photos encoded once, and
//! answers streamed token by token. The CLI and the wasm API both drive this.

use crate::error::Result;
use crate::generate::{Sampler, SamplingOptions};
use crate::gpu::read_f32;
use crate::image::Views;
use crate::model::{FusionModel, ImageContext, VisionOptions};
use crate::tokenizer::Tokenizer;

/// A photo with its question-independent features (the tile grid), reused by every question.
pub struct Photo {
    pub views: Views,
    pub context: ImageContext,
}

#[derive(Clone, Debug, Default)]
pub struct AskOptions {
    pub sampling: SamplingOptions,
    /// Latent tokens Q (a perfect square); `None` takes the config's default.
    pub latents: Option<usize>,
    /// FUSION-L: the image-token grid side after reduction (`None`: all N tokens).
    pub reduced_side: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A stop token was generated.
    EndOfTurn,
    /// `max_new_tokens` or the context was reached.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct Answer {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub stop: StopReason,
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
        let mut stop_ids = model.config.eos_ids();
        if let Some(text) = generation_config {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| crate::Error::invalid("generation_config.json", e.to_string()))?;
            match &v["eos_token_id"] {
                serde_json::Value::Number(n) => stop_ids.extend(n.as_u64().map(|n| n as u32)),
                serde_json::Value::Array(a) => stop_ids.extend(a.iter().filter_map(|n| n.as_u64()).map(|n| n as u32)),
                _ => {}
            }
        }
        stop_ids.extend(tokenizer.end_of_turn());
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(Self { model, tokenizer, stop_ids })
    }

    /// Load a checkpoint directory (config, safetensors, tokenizer, generation config).
    #[cfg(not(target_family = "wasm"))]
    pub fn load(dir: &std::path::Path, gpu: &crate::Gpu, format: crate::model::WeightFormat) -> Result<Self> {
        let model = FusionModel::load(dir, gpu, format)?;
        let tokenizer = Tokenizer::load(dir, model.config.model_type)?;
        let generation = match dir.join("manifest.json").exists() {
            true => crate::loader::Converted::open(dir)?.manifest.generation_config.map(|v| v.to_string()),
            false => std::fs::read_to_string(dir.join("generation_config.json")).ok(),
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

    /// Answer `question` about `photo` after earlier `(question, answer)` turns. `on_text`
    /// receives each new piece of text and returns `false` to stop.
    pub async fn ask(&self, photo: &Photo, history: &[(String, String)], question: &str, options: &AskOptions, mut on_text: impl FnMut(&str) -> bool) -> Result<Answer> {
        let prompt = self.tokenizer.image_prompt(history, question)?;
        let latents = options.latents.unwrap_or_else(|| self.model.config.default_latents());
        let mut cache = self.model.new_cache();
        let vision = VisionOptions { latents, reduced_side: options.reduced_side };
        let logits = self.model.prefill(&prompt, Some((&photo.views, &photo.context)), vision, &mut cache, None)?;
        let prompt_tokens = cache.len();
        let mut logits = read_f32(logits).await?;
        let mut sampler = Sampler::new(options.sampling.clone());
        let (mut tokens, mut text) = (Vec::new(), String::new());
        let stop = loop {
            if tokens.len() >= options.sampling.max_new_tokens || cache.len() >= self.model.config.max_context() {
                break StopReason::Length;
            }
            let next = sampler.pick(&logits);
            if self.stop_ids.contains(&next) {
                break StopReason::EndOfTurn;
            }
            tokens.push(next);
            // Decode the whole answer each time so multi-token characters come out whole; hold
            // back a trailing partial character (U+FFFD) until it completes.
            let decoded = self.tokenizer.decode(&tokens)?;
            let complete = decoded.trim_end_matches('\u{FFFD}');
            if complete.len() > text.len() && complete.starts_with(text.as_str()) {
                let delta = &complete[text.len()..];
                let go_on = on_text(delta);
                text = complete.to_owned();
                if !go_on {
                    break StopReason::Cancelled;
                }
            }
            if tokens.len() < options.sampling.max_new_tokens {
                logits = read_f32(self.model.decode(next, &mut cache)?).await?;
            }
        };
        let text = self.tokenizer.decode(&tokens)?.trim().to_owned();
        Ok(Answer { text, tokens, prompt_tokens, stop })
    }
}
