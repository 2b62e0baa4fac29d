//! The wasm-bindgen surface, used by `web/src/worker.js`. Engine errors become JS `Error`s
//! here, once.

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use crate::engine::{AskOptions, Conversation, Engine as QaEngine, Photo, StopReason};
use crate::generate::SamplingOptions;
use crate::image::Views;
use crate::loader::{Converted, ShardReader};
use crate::manifest::{Manifest, ShardEntry};
use crate::model::{FusionModel, WeightFormat};
use crate::tokenizer::Tokenizer;
use crate::{Error, Gpu};

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

unsafe extern "C" {
    /// Synthesised by wasm-ld: runs the module's static constructors, 4 892 `inventory`
    /// registrations of cubecl's IR (built on pliron), counted in the release build.
    fn __wasm_call_ctors();
}

/// Runs once, right after instantiation (wasm-bindgen's `__wbindgen_start`).
///
/// The explicit call to `__wasm_call_ctors` matters for speed: a module that never calls it is
/// linked "command-style", and wasm-ld then wraps *every* export (`….command_export`) to run
/// all the constructors again on each call from JS, down to the externref-table allocation
/// behind every JS object wasm touches. Loading the 0.4 MB test model took 9–10 s on
/// SwiftShader, nearly all of it in those constructors (a CPU profile of the page); with this
/// call it takes 0.5–0.8 s, and the 1.2 GB test model's upload 18–20 s → 5–7 s (BENCHMARKS.md,
/// "Browser: loading a model and answering").
#[wasm_bindgen(start)]
fn start() {
    // SAFETY: called once, before any other export runs Rust code that reads what the
    // constructors register; `inventory`'s constructors are idempotent in any case.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

thread_local! {
    // burn registers one wgpu runtime per page; every Engine shares it.
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

async fn shared_gpu() -> Result<Gpu, Error> {
    if let Some(gpu) = GPU.with(|g| g.borrow().clone()) {
        return Ok(gpu);
    }
    let gpu = Gpu::new_async().await?;
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
}

/// The engine's handle on the browser's GPU (kernel self-checks).
#[wasm_bindgen]
pub struct Engine {
    gpu: Gpu,
}

#[wasm_bindgen]
impl Engine {
    /// Request a WebGPU adapter and device. Fails with a clear message when WebGPU is missing.
    pub async fn create() -> Result<Engine, JsError> {
        Ok(Engine { gpu: shared_gpu().await.map_err(js_error)? })
    }

    /// Run the int4 matvec kernel, with the subgroup or the shared-memory reduction, on random
    /// `m×k · (n×k)ᵀ` inputs; returns the relative L2 error against the CPU reference on the
    /// dequantised weights.
    #[wasm_bindgen(js_name = checkInt4Matvec)]
    #[allow(clippy::too_many_arguments)]
    pub async fn check_int4_matvec(
        &self,
        m: usize,
        n: usize,
        k: usize,
        group: usize,
        subgroups: bool,
        seed: u32,
    ) -> Result<f64, JsError> {
        use crate::kernels::int4_matvec::{MatvecShape, check_variant_against_reference};
        check_variant_against_reference(&self.gpu, (m, n, k, group), MatvecShape::DEFAULT, subgroups, seed as u64)
            .await
            .map_err(js_error)
    }

    /// What the device offers beyond WebGPU's baseline: `{ f16, subgroups }`.
    pub fn capabilities(&self) -> Result<JsValue, JsError> {
        capabilities_object(self.gpu.capabilities())
    }

    /// The same check for the tiled int4 GEMM (prefill, vision tower).
    #[wasm_bindgen(js_name = checkInt4Matmul)]
    pub async fn check_int4_matmul(
        &self,
        m: usize,
        n: usize,
        k: usize,
        group: usize,
        seed: u32,
    ) -> Result<f64, JsError> {
        crate::kernels::int4_matmul::check_against_reference(&self.gpu, m, n, k, group, seed as u64)
            .await
            .map_err(js_error)
    }

    /// The same check for fused attention: `heads` query heads over `kv_heads`, `rows` query
    /// rows against `keys` keys of width `head_dim` (followed by `spare` unused cache rows),
    /// causal or full with a padding bias.
    #[wasm_bindgen(js_name = checkAttention)]
    #[allow(clippy::too_many_arguments)]
    pub async fn check_attention(
        &self,
        heads: usize,
        kv_heads: usize,
        rows: usize,
        keys: usize,
        head_dim: usize,
        spare: usize,
        causal: bool,
        bias: bool,
        seed: u32,
    ) -> Result<f64, JsError> {
        let mask = if causal { crate::kernels::Mask::Causal } else { crate::kernels::Mask::Full };
        crate::kernels::attention::check_against_reference(
            &self.gpu,
            (heads, kv_heads, rows, keys, head_dim),
            spare,
            mask,
            bias,
            seed as u64,
        )
        .await
        .map_err(js_error)
    }

    /// The same check for RMSNorm over `rows` rows of `cols`.
    #[wasm_bindgen(js_name = checkRmsNorm)]
    pub async fn check_rms_norm(&self, rows: usize, cols: usize, seed: u32) -> Result<f64, JsError> {
        crate::kernels::rms_norm::check(&self.gpu, rows, cols, seed as u64).await.map_err(js_error)
    }

    /// The same check for RoPE into the KV cache: `s` positions of `heads` q heads and
    /// `kv_heads` kv heads of `head_dim`, packed as the fused projection or not, written at row
    /// `start` of a cache of `capacity` rows.
    #[wasm_bindgen(js_name = checkRope)]
    #[allow(clippy::too_many_arguments)]
    pub async fn check_rope(
        &self,
        s: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        fused: bool,
        start: usize,
        capacity: usize,
        seed: u32,
    ) -> Result<f64, JsError> {
        crate::kernels::rope::check(&self.gpu, (s, heads, kv_heads, head_dim), fused, (start, capacity), seed as u64)
            .await
            .map_err(js_error)
    }

    /// The same check for the int4 matvec with SwiGLU: `n` rows of gate, then up.
    #[wasm_bindgen(js_name = checkInt4MatvecSwiglu)]
    pub async fn check_int4_matvec_swiglu(
        &self,
        m: usize,
        n: usize,
        k: usize,
        group: usize,
        seed: u32,
    ) -> Result<f64, JsError> {
        crate::kernels::int4_matvec::check_swiglu_against_reference(&self.gpu, (m, n, k, group), seed as u64)
            .await
            .map_err(js_error)
    }

    /// The same check for the int4 matvec with an RMSNorm of its input, with or without SwiGLU.
    #[wasm_bindgen(js_name = checkInt4MatvecNormed)]
    #[allow(clippy::too_many_arguments)]
    pub async fn check_int4_matvec_normed(
        &self,
        m: usize,
        n: usize,
        k: usize,
        group: usize,
        swiglu: bool,
        seed: u32,
    ) -> Result<f64, JsError> {
        crate::kernels::int4_matvec::check_normed_against_reference(&self.gpu, (m, n, k, group), swiglu, seed as u64)
            .await
            .map_err(js_error)
    }

    /// Greedy decoding's argmax over `n` random logits and its edge cases (repeated maxima,
    /// NaN, infinities, signed zeros); returns how many cases disagree with the CPU's pick.
    #[wasm_bindgen(js_name = checkArgmax)]
    pub async fn check_argmax(&self, n: usize, seed: u32) -> Result<f64, JsError> {
        crate::kernels::argmax::check(&self.gpu, n, seed as u64).await.map(|wrong| wrong as f64).map_err(js_error)
    }

    /// The embedding lookup from random f16 and f32 tables of `vocab` × `cols`: `ids` prompt
    /// ids and ids picked on the GPU; returns how many elements differ from the CPU's lookup
    /// (plus one if a pick among more logits than the table has rows was not refused).
    #[wasm_bindgen(js_name = checkEmbedding)]
    pub async fn check_embedding(&self, vocab: usize, cols: usize, ids: usize, seed: u32) -> Result<f64, JsError> {
        crate::kernels::embedding::check(&self.gpu, vocab, cols, ids, seed as u64)
            .await
            .map(|wrong| wrong as f64)
            .map_err(js_error)
    }

    /// The same check for SwiGLU over `rows` rows of `inter` gate and `inter` up values.
    #[wasm_bindgen(js_name = checkSwiglu)]
    pub async fn check_swiglu(&self, rows: usize, inter: usize, seed: u32) -> Result<f64, JsError> {
        crate::kernels::swiglu::check(&self.gpu, rows, inter, seed as u64).await.map_err(js_error)
    }
}

/// Check a model manifest (format, version, file names that stay in the model's folder, every
/// range inside its shard) before anything it names is fetched.
#[wasm_bindgen(js_name = checkManifest)]
pub fn check_manifest(text: &str) -> Result<(), JsError> {
    crate::manifest::Manifest::from_json(text).map(drop).map_err(js_error)
}

/// Incremental sha256 (SubtleCrypto can only hash a whole buffer at once).
#[wasm_bindgen]
pub struct Sha256Stream(sha2::Sha256);

#[wasm_bindgen]
impl Sha256Stream {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.0.update(bytes);
    }

    /// Lowercase hex digest.
    pub fn finish(self) -> String {
        use sha2::Digest;
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Default for Sha256Stream {
    fn default() -> Self {
        Self::new()
    }
}

/// Shard bytes from JS: `read(file, offset, length) → Uint8Array`, synchronous (the worker
/// reads its verified OPFS copy through a `FileSystemSyncAccessHandle`). One tensor at a time
/// passes through the wasm heap.
struct JsShards(js_sys::Function);

impl ShardReader for JsShards {
    fn read(&mut self, shard: &ShardEntry, offset: u64, out: &mut [u8]) -> crate::Result<()> {
        let got = self
            .0
            .call3(
                &JsValue::NULL,
                &JsValue::from_str(&shard.file),
                &JsValue::from_f64(offset as f64),
                &JsValue::from_f64(out.len() as f64),
            )
            .map_err(|e| Error::invalid(&shard.file, format!("read failed: {e:?}")))?;
        let bytes = js_sys::Uint8Array::new(&got);
        if bytes.length() as usize != out.len() {
            return Err(Error::invalid(
                &shard.file,
                format!(
                    "{} bytes read at {offset}, {} expected: the cached shard is truncated",
                    bytes.length(),
                    out.len()
                ),
            ));
        }
        bytes.copy_to(out);
        Ok(())
    }
}

/// `{ f16, subgroups }`: what the kernels use beyond WebGPU's baseline.
fn capabilities_object(c: crate::gpu::Capabilities) -> Result<JsValue, JsError> {
    let out = js_sys::Object::new();
    for (key, value) in [("f16", c.f16), ("subgroups", c.subgroups)] {
        js_sys::Reflect::set(&out, &key.into(), &value.into())
            .map_err(|_| JsError::new("cannot build the capabilities object"))?;
    }
    Ok(out.into())
}

/// A loaded model, the photos it has encoded and the current conversation.
#[wasm_bindgen]
pub struct Model {
    engine: QaEngine,
    photos: RefCell<Vec<Option<Photo>>>,
    /// The conversation a follow-up continues: its photo id (none for a text-only one) and KV
    /// cache.
    conversation: RefCell<Option<(Option<u32>, Conversation)>>,
}

/// [`Model::ask`]'s options, as `web/src/index.js` names them; a name it does not know is an
/// error, not an option silently ignored.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsAskOptions {
    max_new_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    repetition_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    stop: Option<Vec<String>>,
    /// The alternatives listed per token; given at all, each token's log-probability is reported.
    logprobs: Option<usize>,
    /// In place of the chat template's system prompt.
    system: Option<String>,
    latents: Option<usize>,
    reduced_side: Option<usize>,
}

impl JsAskOptions {
    /// Each option not given takes [`SamplingOptions::default`]'s value.
    fn into_ask_options(self) -> AskOptions {
        let d = SamplingOptions::default();
        let sampling = SamplingOptions {
            max_new_tokens: self.max_new_tokens.unwrap_or(d.max_new_tokens),
            temperature: self.temperature.unwrap_or(d.temperature),
            top_p: self.top_p.unwrap_or(d.top_p),
            seed: self.seed.unwrap_or(d.seed),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            stop: self.stop.unwrap_or(d.stop),
            logprobs: self.logprobs,
        };
        AskOptions { sampling, latents: self.latents, reduced_side: self.reduced_side, system: self.system }
    }
}

#[wasm_bindgen]
impl Model {
    /// Build the model from a converted model's manifest (shards already verified by the caller).
    pub async fn load(manifest_json: String, tokenizer_json: String, read: js_sys::Function) -> Result<Model, JsError> {
        let gpu = shared_gpu().await.map_err(js_error)?;
        let manifest = Manifest::from_json(&manifest_json).map_err(js_error)?;
        let group = manifest.tensors.iter().find_map(|t| t.group).unwrap_or(32);
        let generation = manifest.generation_config.as_ref().map(|v| v.to_string());
        let mut converted = Converted::new(manifest, JsShards(read));
        let model =
            FusionModel::from_converted(&mut converted, &gpu, WeightFormat::Int4 { group }).map_err(js_error)?;
        let tokenizer = Tokenizer::from_bytes(tokenizer_json.as_bytes(), model.config.model_type).map_err(js_error)?;
        let engine = QaEngine::new(model, tokenizer, generation.as_deref()).map_err(js_error)?;
        Ok(Model { engine, photos: RefCell::new(Vec::new()), conversation: RefCell::new(None) })
    }

    /// What the model's kernels use beyond WebGPU's baseline: `{ f16, subgroups }`.
    pub fn capabilities(&self) -> Result<JsValue, JsError> {
        capabilities_object(self.engine.model.gpu().capabilities())
    }

    /// Preprocess RGBA pixels (from `createImageBitmap` + canvas) and encode the photo's tiles;
    /// resolves to a photo id for [`Model::ask`] once the GPU has finished (so it can be timed).
    #[wasm_bindgen(js_name = encodePhoto)]
    pub async fn encode_photo(&self, rgba: Vec<u8>, width: usize, height: usize) -> Result<u32, JsError> {
        if rgba.len() != width * height * 4 {
            return Err(js_error(Error::invalid(
                "image",
                format!("{width}×{height} RGBA needs {} bytes, got {}", width * height * 4, rgba.len()),
            )));
        }
        let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let views = Views::from_rgb(&rgb, width, height).map_err(js_error)?;
        let photo = self.engine.encode_photo(views).map_err(js_error)?;
        self.engine.model.gpu().sync().await.map_err(js_error)?;
        let mut photos = self.photos.borrow_mut();
        photos.push(Some(photo));
        Ok(photos.len() as u32 - 1)
    }

    #[wasm_bindgen(js_name = forgetPhoto)]
    pub fn forget_photo(&self, id: u32) {
        if let Some(slot) = self.photos.borrow_mut().get_mut(id as usize) {
            *slot = None;
        }
    }

    /// Answer `question` about photo `id` (`undefined`: a text-only conversation, answered by
    /// the plain LLM) after `history_json` (`[[question, answer], …]`).
    /// When the history is the current conversation's (same photo, same questions), the
    /// follow-up continues its KV cache; otherwise the history is replayed into a new one. `on_text(piece)`
    /// gets each new piece of text and returns `false` to stop. Resolves to
    /// `{ text, tokens, logprobs, promptTokens, droppedTurns, rebuilt, stop, timings, gpuBytesInUse, decodePath }`
    /// as JSON (`logprobs`: OpenAI's `logprobs.content`, or null when not asked for; `rebuilt`:
    /// whether the earlier turns were prefilled again before this one, a history replayed or
    /// the cache rebuilt, [`Conversation::rebuilds`]).
    pub async fn ask(
        &self,
        id: Option<u32>,
        history_json: String,
        question: String,
        options_json: String,
        on_text: js_sys::Function,
    ) -> Result<String, JsError> {
        let history: Vec<(String, String)> =
            serde_json::from_str(&history_json).map_err(|e| js_error(Error::invalid("history", e.to_string())))?;
        let o: JsAskOptions =
            serde_json::from_str(&options_json).map_err(|e| js_error(Error::invalid("options", e.to_string())))?;
        let options = o.into_ask_options();
        // Before a history is replayed into a new conversation (GPU work), not only in `ask`.
        options.sampling.check().map_err(js_error)?;
        // The photo is taken out while answering so no RefCell borrow lives across an await.
        let photo = id
            .map(|id| {
                self.photos
                    .borrow_mut()
                    .get_mut(id as usize)
                    .and_then(Option::take)
                    .ok_or_else(|| js_error(Error::invalid("photo", format!("no photo {id}"))))
            })
            .transpose()?;
        let give_back = |photo: Option<Photo>| {
            if let (Some(id), Some(photo)) = (id, photo) {
                self.photos.borrow_mut()[id as usize] = Some(photo);
            }
        };
        let asked: Vec<String> = history.iter().map(|(q, _)| q.trim().to_owned()).collect();
        let (mut conversation, replayed) = match self.conversation.borrow_mut().take() {
            Some((photo_id, c)) if photo_id == id && c.questions() == asked => (c, false),
            // Another photo or an edited history: rebuild its cache (the same photo is reused).
            _ => match self.engine.resume(photo.as_ref(), &history, &options) {
                Ok(c) => (c, !history.is_empty()),
                Err(e) => {
                    give_back(photo);
                    return Err(js_error(e));
                }
            },
        };
        let rebuilds = conversation.rebuilds();
        let result = self
            .engine
            .ask(&mut conversation, photo.as_ref(), &question, &options, |piece| {
                on_text
                    .call1(&JsValue::NULL, &JsValue::from_str(piece))
                    .map(|v| v.as_bool() != Some(false))
                    .unwrap_or(false)
            })
            .await;
        give_back(photo);
        let (decode_path, dropped_turns) = (conversation.decode_path().to_owned(), conversation.dropped_turns());
        let rebuilt = replayed || conversation.rebuilds() > rebuilds;
        // Kept even after a failure: a failed question is not a turn, and the next one rebuilds
        // the cache from the turns before it (`Engine::ask`).
        *self.conversation.borrow_mut() = Some((id, conversation));
        let answer = result.map_err(js_error)?;
        let stop = match answer.stop {
            StopReason::EndOfTurn => "end_of_turn",
            StopReason::StopSequence => "stop_sequence",
            StopReason::Length => "length",
            StopReason::Cancelled => "cancelled",
        };
        let t = answer.timings;
        let timings =
            serde_json::json!({ "visionMs": t.vision_ms, "prefillMs": t.prefill_ms, "decodeMs": t.decode_ms });
        let (gpu_bytes, _) = self.engine.model.gpu().memory();
        let logprobs = options.sampling.logprobs.map(|_| self.engine.logprobs_json(&answer));
        Ok(serde_json::json!({ "text": answer.text, "tokens": answer.tokens, "logprobs": logprobs, "promptTokens": answer.prompt_tokens, "droppedTurns": dropped_turns, "rebuilt": rebuilt, "stop": stop, "timings": timings, "gpuBytesInUse": gpu_bytes, "decodePath": decode_path }).to_string())
    }
}
