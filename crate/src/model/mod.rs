//! FUSION (arXiv 2504.09925): wires the vision tower, projectors, interaction layers and
//! decoder into the two inference steps, prefill and decode (spec §1).
//!
//! Reference: `fusion/model/fusion_arch.py`, `language_model/fusion_phi.py`, `fusion_llama.py`
//! at `starriver030515/FUSION@c40f93f`.

pub mod alignment;
pub mod attention;
pub mod decode_graph;
pub mod decoder;
pub mod embedding;
pub mod kv_cache;
pub mod linear;
pub mod norm;
pub mod params;
pub mod projector;
pub mod rope;
pub mod trace;
pub mod vision;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use burn::tensor::Tensor;

use crate::config::{FusionConfig, VisionConfig};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::image::Views;
use crate::kernels::argmax::{self, Pick};
use crate::kernels::embedding::Ids;
use crate::loader::{Checkpoint, Converted, Reporting, ShardReader, TensorSource};
use alignment::{Interaction, adaptive_max_pool, context_windows};
pub use attention::Kernels;
use decoder::Decoder;
pub use kv_cache::KvCache;
use params::Params;
pub use params::WeightFormat;
use projector::Projector;
pub use trace::Trace;
use trace::record;
use vision::{Question, VisionTower};

/// Sentinel ids in a prompt (`fusion/constants.py`): the FIRST sentinel of a prompt receives
/// the N image tokens and the second the Q latents, whatever their kind (spec §1.8, §11).
pub const IMAGE_TOKEN_INDEX: i64 = -200;
pub const LATENT_IMAGE_TOKEN_INDEX: i64 = -300;

/// A tokenised prompt: `ids` with the two sentinels, and the question ids that guide the tower.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub ids: Vec<i64>,
    pub instructs: Vec<u32>,
}

/// Per-question vision choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisionOptions {
    /// Latent tokens Q, a perfect square (spec §5.1; [OPEN §10.2] fixed, user-chosen).
    pub latents: usize,
    /// FUSION-L: resize the projected `n×n` image-token grid to `m×m` before it enters the
    /// sequence (the reference's commented-out, training-free reduction, spec §2). [OPEN §10.5]
    /// the code comment says 12×12, the README's token count fits 16×16: `m` is a parameter,
    /// [`FUSION_L_SIDE`] by default.
    pub reduced_side: Option<usize>,
}

/// Default FUSION-L grid side, as in the reference's code comment.
pub const FUSION_L_SIDE: usize = 12;

/// A prompt embedded for the decoder: the sequence, and where the latents sit.
pub struct Embedded {
    /// `[S, D]`
    x: Tensor<2>,
    len: usize,
    latents: usize,
    vision_pos: Option<usize>,
    /// The latents' context windows `[Q, w², D]`, when the prompt has an image.
    windows: Option<Tensor<3>>,
}

/// What the tiles of one photo give, independent of the question: cached per image.
#[derive(Clone)]
pub struct ImageContext {
    /// The stitched `2n×2n` grid G in LLM space, `[(2n)², D]`.
    pub grid: Tensor<2>,
}

pub struct FusionModel {
    pub config: FusionConfig,
    gpu: Gpu,
    tower: VisionTower,
    mm_projector: Projector,
    aux_projector: Projector,
    interactions: Vec<Interaction>,
    decoder: Decoder,
    /// Decode through recorded steps ([`FusionModel::set_decode_graphs`]); turned off for good
    /// by a recording refused once its window was open (`decode_graph::step`).
    decode_graphs: AtomicBool,
    /// Unique per model loaded in this process: a recorded decode step reads one model's weights.
    id: u64,
}

impl FusionModel {
    /// Load a Hugging Face FUSION checkpoint directory, or a converted one (`manifest.json`).
    pub fn load(dir: &Path, gpu: &Gpu, format: WeightFormat) -> Result<Self> {
        Self::load_reporting(dir, gpu, format, &mut |_, _| {})
    }

    /// [`Self::load`], calling `report(taken, total)` as the tensors reach the GPU (`total`:
    /// the tensors the folder holds; the model takes all but the tower's unused last norm).
    pub fn load_reporting(
        dir: &Path,
        gpu: &Gpu,
        format: WeightFormat,
        report: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        if dir.join("manifest.json").exists() {
            let mut converted = Converted::open(dir)?;
            let (config, vision) = Self::converted_configs(&converted)?;
            let total = converted.manifest.tensors.len();
            let mut report = |taken| report(taken, total);
            let mut source = Reporting::new(&mut converted, &mut report);
            return Self::from_source(config, &vision, &mut source, gpu, format);
        }
        let config = FusionConfig::load(dir)?;
        let vision = VisionConfig::load(dir, &config)?;
        let mut checkpoint = Checkpoint::open(dir)?;
        let total = checkpoint.names().count();
        let mut report = |taken| report(taken, total);
        let mut source = Reporting::new(&mut checkpoint, &mut report);
        Self::from_source(config, &vision, &mut source, gpu, format)
    }

    /// Load a converted model (configs from its manifest).
    pub fn from_converted<R: ShardReader>(
        converted: &mut Converted<R>,
        gpu: &Gpu,
        format: WeightFormat,
    ) -> Result<Self> {
        let (config, vision) = Self::converted_configs(converted)?;
        Self::from_source(config, &vision, converted, gpu, format)
    }

    /// A converted model's configs, from its manifest.
    fn converted_configs<R: ShardReader>(converted: &Converted<R>) -> Result<(FusionConfig, VisionConfig)> {
        let m = &converted.manifest;
        let config = FusionConfig::from_json(&m.config.to_string())?;
        let vision = match &m.vision_config {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| Error::invalid("manifest.json vision_config", e.to_string()))?,
            None => VisionConfig::defaults(config.tower_kind()),
        };
        Ok((config, vision))
    }

    pub fn from_source(
        config: FusionConfig,
        vision: &VisionConfig,
        source: &mut dyn TensorSource,
        gpu: &Gpu,
        format: WeightFormat,
    ) -> Result<Self> {
        gpu.persistent(|| Self::load_weights(config, vision, source, gpu, format))
    }

    fn load_weights(
        config: FusionConfig,
        vision: &VisionConfig,
        source: &mut dyn TensorSource,
        gpu: &Gpu,
        format: WeightFormat,
    ) -> Result<Self> {
        let mut p = Params { source, gpu, format };
        let tower = VisionTower::load(&mut p, config.tower_kind(), vision)?;
        if tower.width != config.mm_hidden_size {
            return Err(Error::invalid(
                "config.json",
                format!("mm_hidden_size {} but the tower is {} wide", config.mm_hidden_size, tower.width),
            ));
        }
        let d = config.hidden_size;
        let mm_projector = Projector::load_mm(&mut p, tower.width, d)?;
        let aux_projector = Projector::load_aux(&mut p, d, tower.width)?;
        let decoder = Decoder::load(&mut p, &config)?;
        let after = config.interaction_after();
        if let Some(bad) = after.iter().find(|&&l| l >= decoder.depth()) {
            return Err(Error::invalid(
                "config.json",
                format!("an interaction layer follows decoder layer {bad}, but there are {}", decoder.depth()),
            ));
        }
        let interactions = (0..after.len()).map(|k| Interaction::load(&mut p, k, d)).collect::<Result<Vec<_>>>()?;
        static MODELS: AtomicU64 = AtomicU64::new(0);
        let id = MODELS.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            config,
            gpu: gpu.clone(),
            tower,
            mm_projector,
            aux_projector,
            interactions,
            decoder,
            decode_graphs: AtomicBool::new(gpu.records_decode_steps()),
            id,
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Run attention, RMSNorm, RoPE and SwiGLU through our kernels (the default) or burn's ops.
    pub fn set_kernels(&mut self, imp: Kernels) {
        self.tower.kernels = imp;
        self.decoder.kernels = imp;
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.decoder.depth())
    }

    /// Encode the four tiles without the question and stitch them into the grid G
    /// (spec §3, "Global tiles"): `G[r·n + y, c·n + x] = tile(2r + c)[y·n + x]`.
    pub fn encode_image(&self, views: &Views) -> Result<ImageContext> {
        let tiles: Vec<&[f32]> = (0..4).map(|i| views.view(i)).collect();
        let features = self.tower.forward(&self.gpu, &tiles, views.size, None, None)?;
        let tokens = self.mm_projector.forward(&self.gpu, features)?; // [4, N, D]
        let (n, d) = (self.tower.side, self.config.hidden_size);
        let grid = tokens.reshape([2, 2, n, n, d]).permute([0, 2, 1, 3, 4]).reshape([4 * n * n, d]);
        Ok(ImageContext { grid })
    }

    /// The N image tokens of the question-guided view (spec §3, steps 1–10).
    fn encode_question_view(
        &self,
        views: &Views,
        instructs: &[u32],
        trace: &mut Option<&mut Trace>,
    ) -> Result<Tensor<2>> {
        if instructs.is_empty() {
            return Err(Error::invalid("prompt", "the question is empty"));
        }
        let states = self.aux_projector.forward(&self.gpu, self.decoder.embed(&self.gpu, Ids::Cpu(instructs))?)?;
        record(trace, || "vision.question_view.instruct_states".into(), &states);
        let question = Question { states, keep: instructs.iter().map(|&id| id != 0).collect() };
        let features =
            self.tower.forward(&self.gpu, &[views.view(4)], views.size, Some(&question), trace.as_deref_mut())?;
        record(trace, || "vision.question_view.connector_out".into(), &features);
        let [_, _, width] = features.dims();
        let n = self.tower.patches();
        // Only the image rows go on: the question rows feed a training loss (spec §3.10).
        let image_rows = features.slice([0..1, 0..n, 0..width]).reshape([n, width]);
        let tokens = self.mm_projector.forward(&self.gpu, image_rows)?;
        record(trace, || "vision.image_tokens".into(), &tokens);
        Ok(tokens)
    }

    /// Run the whole prompt through the decoder, with the interaction layers after the listed
    /// layers, filling `cache`; returns the logits of the first new token (spec §1.7–1.9).
    /// `image` is `None` only for text-only prompts (no sentinels; our extension, §10.10).
    pub fn prefill(
        &self,
        prompt: &Prompt,
        image: Option<(&Views, &ImageContext)>,
        vision: VisionOptions,
        cache: &mut KvCache,
        mut trace: Option<&mut Trace>,
    ) -> Result<Tensor<1>> {
        let embedded = self.embed_prompt(prompt, image, vision, cache, trace.as_deref_mut())?;
        self.run_decoder(embedded, cache, trace)
    }

    /// Image tokens a question puts in the sequence: all N, or the FUSION-L grid.
    fn image_tokens(&self, vision: VisionOptions) -> Result<usize> {
        match vision.reduced_side {
            Some(m) if m == 0 || m > self.tower.side => Err(Error::invalid(
                "reduced image tokens",
                format!("a {m}×{m} grid; it must be 1 to {} per side", self.tower.side),
            )),
            Some(m) => Ok(m * m),
            None => Ok(self.tower.patches()),
        }
    }

    /// Positions `prompt` takes in the decoder: its text, plus the image tokens and latents
    /// its sentinels stand for.
    pub fn sequence_len(&self, prompt: &Prompt, vision: VisionOptions) -> Result<usize> {
        if let Some(bad) =
            prompt.ids.iter().find(|&&id| id < 0 && id != IMAGE_TOKEN_INDEX && id != LATENT_IMAGE_TOKEN_INDEX)
        {
            return Err(Error::invalid("prompt", format!("unknown sentinel id {bad}")));
        }
        let sentinels = prompt.ids.iter().filter(|&&id| id < 0).count();
        Ok(prompt.ids.len() - sentinels + if sentinels == 0 { 0 } else { self.image_tokens(vision)? + vision.latents })
    }

    /// The first half of [`FusionModel::prefill`]: the question-guided vision, pooling and the
    /// assembled input sequence, so its cost can be timed on its own.
    pub fn embed_prompt(
        &self,
        prompt: &Prompt,
        image: Option<(&Views, &ImageContext)>,
        vision: VisionOptions,
        cache: &KvCache,
        mut trace: Option<&mut Trace>,
    ) -> Result<Embedded> {
        let gpu = &self.gpu;
        let latents = vision.latents;
        let sentinels: Vec<usize> = prompt.ids.iter().enumerate().filter(|(_, id)| **id < 0).map(|(i, _)| i).collect();
        // Refuse an over-long prompt before any GPU work.
        let expected = self.sequence_len(prompt, vision)?;
        if cache.len() + expected > self.config.max_context() {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "{} positions ({} cached + {expected} new) exceed the model's context of {}",
                    cache.len() + expected,
                    cache.len(),
                    self.config.max_context()
                ),
            ));
        }
        let mut pieces: Vec<Tensor<2>> = Vec::new();
        let mut vision_pos = None;
        let mut len = 0;
        let text_run = |ids: &[i64], pieces: &mut Vec<Tensor<2>>, len: &mut usize| -> Result<()> {
            if !ids.is_empty() {
                let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
                pieces.push(self.decoder.embed(gpu, Ids::Cpu(&ids))?);
                *len += ids.len();
            }
            Ok(())
        };
        let context = match (sentinels.as_slice(), image) {
            ([], _) => {
                text_run(&prompt.ids, &mut pieces, &mut len)?;
                None
            }
            (&[first, second], Some((views, image))) => {
                let side = FusionConfig::latent_side(latents)?;
                let w = self.config.window_size;
                let grid_side = 2 * self.tower.side;
                if side > grid_side || w * side > grid_side {
                    return Err(Error::invalid(
                        "latents",
                        format!(
                            "{latents} latents need a {}-wide context grid; the image grid is {grid_side} wide",
                            w * side
                        ),
                    ));
                }
                record(&mut trace, || "global_grid".into(), &image.grid);
                let latent0 = adaptive_max_pool(image.grid.clone(), grid_side, side);
                let ctx = adaptive_max_pool(image.grid.clone(), grid_side, w * side);
                record(&mut trace, || "latent0".into(), &latent0);
                record(&mut trace, || "ctx".into(), &ctx);
                let mut tokens = self.encode_question_view(views, &prompt.instructs, &mut trace)?;
                if let Some(m) = vision.reduced_side {
                    tokens = alignment::bilinear_resize(gpu, tokens, self.tower.side, m);
                }
                text_run(&prompt.ids[..first], &mut pieces, &mut len)?;
                len += tokens.dims()[0];
                pieces.push(tokens);
                text_run(&prompt.ids[first + 1..second], &mut pieces, &mut len)?;
                vision_pos = Some(len);
                len += latents;
                pieces.push(latent0);
                text_run(&prompt.ids[second + 1..], &mut pieces, &mut len)?;
                Some(context_windows(gpu, ctx, side, w))
            }
            ([_, _], None) => {
                return Err(Error::invalid("prompt", "the prompt has image placeholders but no image was given"));
            }
            (s, _) => {
                return Err(Error::invalid(
                    "prompt",
                    format!(
                        "{} image placeholders; a prompt holds exactly one image question (two placeholders)",
                        s.len()
                    ),
                ));
            }
        };
        if len == 0 {
            return Err(Error::invalid("prompt", "the prompt is empty"));
        }
        let x = Tensor::cat(pieces, 0);
        record(&mut trace, || "inputs_embeds".into(), &x);
        Ok(Embedded { x, len, latents, vision_pos, windows: context })
    }

    /// The second half of [`FusionModel::prefill`]: the decoder over the embedded prompt with
    /// the interaction layers, filling `cache`; returns the first new token's logits.
    pub fn run_decoder(
        &self,
        embedded: Embedded,
        cache: &mut KvCache,
        mut trace: Option<&mut Trace>,
    ) -> Result<Tensor<1>> {
        let gpu = &self.gpu;
        let d = self.config.hidden_size;
        let Embedded { mut x, len, latents, vision_pos, windows: context } = embedded;
        let step = self.decoder.step_inputs(gpu, cache, len);
        let after = self.config.interaction_after();
        for l in 0..self.decoder.depth() {
            x = self.decoder.layer(gpu, l, x, &step, cache)?;
            record(&mut trace, || format!("prefill.layer_{l}.out"), &x);
            let (Some(k), Some(windows), Some(vp)) = (after.iter().position(|&a| a == l), &context, vision_pos) else {
                continue;
            };
            // Interaction k rewrites only the latent rows, conditioned on the last prompt
            // token's state at this depth (spec §5.2–5.3).
            let query_state = x.clone().slice([len - 1..len, 0..d]).reshape([d]);
            let lat_in = x.clone().slice([vp..vp + latents, 0..d]);
            let lat_out = self.interactions[k].forward(gpu, query_state.clone(), lat_in.clone(), windows.clone())?;
            record(&mut trace, || format!("interaction_{k}.query_state"), &query_state);
            record(&mut trace, || format!("interaction_{k}.latents_in"), &lat_in);
            record(&mut trace, || format!("interaction_{k}.latents_out"), &lat_out);
            x = Tensor::cat(vec![x.clone().slice([0..vp, 0..d]), lat_out, x.slice([vp + latents..len, 0..d])], 0);
        }
        cache.advance(len);
        if trace.is_some() {
            let last = self.decoder.final_norm(gpu, x.clone().slice([len - 1..len, 0..d]))?;
            record(&mut trace, || "prefill.final_norm_last".into(), &last);
        }
        self.decoder.logits(gpu, x)
    }

    /// One decode step: no vision or interaction work (spec §1.10). With our kernels, through
    /// the decode step recorded in the cache (`decode_graph`) where turned on.
    pub fn decode(&self, token: u32, cache: &mut KvCache) -> Result<Tensor<1>> {
        self.decode_from(Ids::Cpu(&[token]), cache)
    }

    /// [`FusionModel::decode`] of the token a greedy pick chose, before the CPU has read it
    /// back: the GPU decodes it while the CPU waits for that read.
    pub fn decode_pick(&self, pick: &Pick, cache: &mut KvCache) -> Result<Tensor<1>> {
        self.decode_from(Ids::Picked(pick), cache)
    }

    /// `steps` greedy tokens after `first`, each step queued on the GPU's pick before that pick
    /// is read back, as the engine's greedy answers decode but without their stop rules: what
    /// `fusion bench` times.
    pub async fn greedy_tokens(&self, first: u32, steps: usize, cache: &mut KvCache) -> Result<Vec<u32>> {
        let mut tokens = Vec::with_capacity(steps);
        let mut next = argmax::pick(&self.gpu, self.decode(first, cache)?)?;
        for _ in 1..steps {
            let ahead = argmax::pick(&self.gpu, self.decode_pick(&next, cache)?)?;
            tokens.push(next.token().await?);
            next = ahead;
        }
        tokens.push(next.token().await?);
        Ok(tokens)
    }

    fn decode_from(&self, token: Ids, cache: &mut KvCache) -> Result<Tensor<1>> {
        if cache.len() + 1 > self.config.max_context() {
            return Err(Error::invalid(
                "generation",
                format!("the context of {} positions is full", self.config.max_context()),
            ));
        }
        let x = self.decoder.embed(&self.gpu, token)?;
        let logits = match self.decoder.kernels == Kernels::Fused && self.decode_graphs.load(Ordering::Relaxed) {
            true => decode_graph::step(self, x, cache)?,
            false => self.decode_launched(x, cache)?,
        };
        cache.advance(1);
        Ok(logits)
    }

    /// Record decode steps and replay them, or launch every kernel each step (the default:
    /// [`Gpu::record_decode_steps`]).
    pub fn set_decode_graphs(&self, on: bool) {
        self.decode_graphs.store(on, Ordering::Relaxed);
    }

    /// [`FusionModel::decode_layers`] with every kernel launched, on this step's own inputs.
    fn decode_launched(&self, x: Tensor<2>, cache: &mut KvCache) -> Result<Tensor<1>> {
        let step = self.decoder.step_inputs(&self.gpu, cache, 1);
        self.decode_layers(x, &step, cache)
    }

    /// The decoder layers and the logits for one new position `x [1, D]`; writes the cache's
    /// next row but leaves its length to the caller.
    fn decode_layers(&self, mut x: Tensor<2>, step: &decoder::StepInputs, cache: &mut KvCache) -> Result<Tensor<1>> {
        for l in 0..self.decoder.depth() {
            x = self.decoder.layer(&self.gpu, l, x, step, cache)?;
        }
        self.decoder.logits(&self.gpu, x)
    }
}
