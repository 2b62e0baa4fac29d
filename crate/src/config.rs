//! Configs deserialised from the checkpoint's own `config.json` (and the vision tower's), with
//! what they lack derived from tensor shapes (spec §7.4, §10.1, §10.8).

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The LLM backbone, from `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Backbone {
    /// Phi-3.5-mini: fused `qkv_proj` and `gate_up_proj`, long-RoPE.
    #[serde(rename = "fusion_phi")]
    Phi,
    /// LLaMA-3.1: separate projections, GQA, llama3 RoPE scaling.
    #[serde(rename = "fusion_llama")]
    Llama,
}

/// The vision tower family. The reference picks the class by substring of `mm_vision_tower`,
/// `siglip2` before `siglip` (`multimodal_encoder/builder.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TowerKind {
    /// siglip-so400m-patch14-384 (FUSION): early layers 0–12.
    Siglip,
    /// siglip2-giant-opt-patch16-384 (FUSION-X): early layers 0–18.
    Siglip2,
}

impl TowerKind {
    pub fn from_name(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.contains("siglip2") {
            Ok(Self::Siglip2)
        } else if lower.contains("siglip") {
            Ok(Self::Siglip)
        } else {
            Err(Error::invalid(
                "config.json",
                format!("unknown vision tower `{name}`: expected a SigLIP or SigLIP2 tower"),
            ))
        }
    }

    /// Layers whose question rows get the reference's uniform-attention quirk (spec §3.6), and
    /// the size of each of the connector's two means.
    pub fn early_layers(self) -> usize {
        match self {
            Self::Siglip => 13,
            Self::Siglip2 => 19,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(v) => vec![*v],
            Self::Many(v) => v.clone(),
        }
    }
}

/// `rope_scaling`, as the two backbones write it.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum RopeScaling {
    LongRope { short_factor: Vec<f32>, long_factor: Vec<f32> },
    Llama3 { factor: f32, low_freq_factor: f32, high_freq_factor: f32, original_max_position_embeddings: usize },
}

/// The decoder and FUSION fields of the checkpoint's `config.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct FusionConfig {
    pub model_type: Backbone,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<usize>,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<OneOrMany>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub tie_word_embeddings: bool,

    pub mm_vision_tower: String,
    pub mm_hidden_size: usize,
    #[serde(default = "default_projector")]
    pub mm_projector_type: String,
    #[serde(default)]
    pub query_len: Option<String>,
    #[serde(default = "default_window")]
    pub window_size: usize,
    #[serde(default = "default_sampler_layers")]
    pub num_of_vision_sampler_layers: usize,
    #[serde(default)]
    pub start_of_vision_sampler_layers: usize,
    #[serde(default = "default_stride")]
    pub stride_of_vision_sampler_layers: usize,
    #[serde(default)]
    pub tokenizer_model_max_length: Option<usize>,
}

fn default_projector() -> String {
    "mlp2x_gelu".into()
}
fn default_window() -> usize {
    3
}
fn default_sampler_layers() -> usize {
    10
}
fn default_stride() -> usize {
    3
}

/// Interaction heads: `VisionCrossAttentionLayer`'s hard-coded default (spec §5.2).
pub const INTERACTION_HEADS: usize = 16;

/// [OPEN §10.2] Q when the config lists several values (the reference draws one at random per
/// question): we default to 64, the middle of the training list, and let the user choose.
pub const DEFAULT_LATENTS: usize = 64;

impl FusionConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(text).map_err(|e| Error::invalid("config.json", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        Self::from_json(&std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("config.json", m));
        if self.mm_projector_type != "mlp2x_gelu" {
            return bad(format!(
                "mm_projector_type `{}` is not supported (expected mlp2x_gelu)",
                self.mm_projector_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads) && self.head_dim.is_none()
        {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("head_dim {} is odd; RoPE needs it even", self.head_dim()));
        }
        if !self.hidden_size.is_multiple_of(INTERACTION_HEADS) {
            return bad(format!(
                "hidden_size {} is not a multiple of the {INTERACTION_HEADS} interaction heads",
                self.hidden_size
            ));
        }
        if self.window_size == 0 {
            return bad("window_size is 0".into());
        }
        for q in self.latent_choices()? {
            Self::latent_side(q)?;
        }
        TowerKind::from_name(&self.mm_vision_tower)?;
        Ok(())
    }

    pub fn tower_kind(&self) -> TowerKind {
        TowerKind::from_name(&self.mm_vision_tower).unwrap_or(TowerKind::Siglip)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// The decoder layers followed by an interaction layer (spec §5.2).
    pub fn interaction_after(&self) -> Vec<usize> {
        (0..self.num_of_vision_sampler_layers)
            .map(|k| self.start_of_vision_sampler_layers + k * self.stride_of_vision_sampler_layers)
            .collect()
    }

    /// The Q values `query_len` allows.
    pub fn latent_choices(&self) -> Result<Vec<usize>> {
        let Some(list) = &self.query_len else { return Ok(vec![DEFAULT_LATENTS]) };
        list.split(',')
            .map(|s| {
                s.trim()
                    .parse::<usize>()
                    .map_err(|_| Error::invalid("config.json", format!("query_len `{list}` is not a list of integers")))
            })
            .collect()
    }

    /// Q when the user does not choose: the config's value if it names one, else [`DEFAULT_LATENTS`].
    pub fn default_latents(&self) -> usize {
        match self.latent_choices().as_deref() {
            Ok([one]) => *one,
            _ => DEFAULT_LATENTS,
        }
    }

    /// `q = √Q`; Q must be a positive perfect square.
    pub fn latent_side(q: usize) -> Result<usize> {
        let side = (q as f64).sqrt().round() as usize;
        if q == 0 || side * side != q {
            return Err(Error::invalid(
                "latents",
                format!("{q} latent tokens is not a positive perfect square (4, 16, 36, 64, 144, …)"),
            ));
        }
        Ok(side)
    }

    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id.as_ref().map(OneOrMany::to_vec).unwrap_or_default()
    }

    /// Longest expanded sequence we run. [§10.12] Phi's long-RoPE switches factors for a whole
    /// call past `original_max_position_embeddings`, which leaves cached keys inconsistent, so
    /// the context is capped there and at `tokenizer_model_max_length`.
    pub fn max_context(&self) -> usize {
        let mut cap = self.tokenizer_model_max_length.unwrap_or(self.max_position_embeddings);
        if self.model_type == Backbone::Phi {
            cap = cap.min(self.original_max_position_embeddings.unwrap_or(cap));
        }
        cap.min(self.max_position_embeddings)
    }
}

/// The vision tower's `config.json` (the folder `mm_vision_tower` names, when present), with
/// widths re-derived from tensor shapes at load time.
#[derive(Clone, Debug, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "default_vision_hidden")]
    pub hidden_size: usize,
    #[serde(default = "default_vision_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "default_vision_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_vision_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_patch")]
    pub patch_size: usize,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
}

fn default_vision_hidden() -> usize {
    1152
}
fn default_vision_intermediate() -> usize {
    4304
}
fn default_vision_heads() -> usize {
    16
}
fn default_vision_layers() -> usize {
    27
}
fn default_patch() -> usize {
    14
}
fn default_image_size() -> usize {
    384
}
fn default_ln_eps() -> f64 {
    1e-6
}

impl VisionConfig {
    /// The base tower's published numbers (spec §3), used when the checkpoint has no tower config.
    pub fn defaults(kind: TowerKind) -> Self {
        let mut c: Self = serde_json::from_str("{}").expect("all fields have defaults");
        if kind == TowerKind::Siglip2 {
            c.hidden_size = 1536;
            c.intermediate_size = 6144;
            c.num_hidden_layers = 40;
            c.patch_size = 16;
        }
        c
    }

    /// Read `<dir>/<mm_vision_tower>/config.json` when the checkpoint ships it.
    pub fn load(dir: &Path, fusion: &FusionConfig) -> Result<Self> {
        let kind = fusion.tower_kind();
        let path = dir.join(&fusion.mm_vision_tower).join("config.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
            }
            Err(_) => Ok(Self::defaults(kind)),
        }
    }

    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
