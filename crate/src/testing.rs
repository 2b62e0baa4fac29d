//! Generates tiny FUSION checkpoints in the published layout (spec §9): sharded safetensors
//! with an index, `config.json`, the tower's config, `generation_config.json` and a byte-level
//! `tokenizer.json`. Deterministic for a seed. Tests and the demo load them through the same
//! code as a real checkpoint; every code path (both towers, both backbones, GQA, bf16 and f32
//! shards) is reachable with these shapes.

use std::collections::BTreeMap;
use std::path::Path;

use half::bf16;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;

use crate::config::Backbone;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use crate::weights::{self, DecoderLinear as L};

#[derive(Clone, Debug)]
pub struct TinySpec {
    pub backbone: Backbone,
    /// SigLIP2-giant path (patch 16, 40 layers) instead of so400m (patch 14, 27 layers).
    pub siglip2: bool,
    pub seed: u64,
    /// A tensor to leave out (for missing-tensor tests).
    pub omit: Option<String>,
    /// Overrides merged into `config.json`.
    pub config_overrides: serde_json::Value,
    pub decoder: DecoderDims,
}

/// The decoder's widths: tiny by default, or a real model's for memory and speed tests.
#[derive(Clone, Copy, Debug)]
pub struct DecoderDims {
    pub width: usize,
    pub heads: usize,
    /// KV heads of the LLaMA backbone (Phi has as many as heads).
    pub kv_heads: usize,
    pub intermediate: usize,
    pub layers: usize,
}

impl DecoderDims {
    pub const TINY: Self = Self { width: 48, heads: 3, kv_heads: 1, intermediate: 80, layers: 5 };
    /// LLaMA-3.1-8B's widths (4096, 32:8 heads, 11008 MLP) with 10 layers: ≈ 1.2 GB of int4.
    pub const LARGE: Self = Self { width: 4096, heads: 32, kv_heads: 8, intermediate: 11008, layers: 10 };
}

impl TinySpec {
    pub fn new(backbone: Backbone) -> Self {
        Self { backbone, siglip2: false, seed: 1, omit: None, config_overrides: json!({}), decoder: DecoderDims::TINY }
    }
}

const C: usize = 24;
const C_INTER: usize = 40;

fn bytes_to_unicode() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut map = vec!['\0'; 256];
    for &b in &printable {
        map[b as usize] = char::from_u32(b).unwrap_or('?');
    }
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            map[b as usize] = char::from_u32(256 + extra).unwrap_or('?');
            extra += 1;
        }
    }
    printable.clear();
    map
}

/// Special tokens of each backbone, after the 256 byte tokens.
fn specials(backbone: Backbone) -> Vec<&'static str> {
    let mut s = match backbone {
        Backbone::Phi => vec!["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"],
        Backbone::Llama => vec!["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>"],
    };
    s.extend(["<vision_start>", "<vision_end>"]);
    s
}

pub(crate) fn tokenizer_json(backbone: Backbone) -> serde_json::Value {
    let map = bytes_to_unicode();
    let vocab: serde_json::Map<String, serde_json::Value> = map.iter().enumerate().map(|(i, c)| (c.to_string(), json!(i))).collect();
    let added: Vec<_> = specials(backbone)
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"id": 256 + i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    // LLaMA-3 prepends <|begin_of_text|>; the tiny Phi adds no BOS (one of the two §10.6 cases).
    let post = match backbone {
        Backbone::Llama => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [256], "tokens": ["<|begin_of_text|>"]}}
        }),
        Backbone::Phi => serde_json::Value::Null,
    };
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": []}
    })
}

struct Tensors {
    rng: SplitMix64,
    /// name → (shape, values, stored dtype); no values when only the layout is wanted
    items: BTreeMap<String, (Vec<usize>, Vec<f32>, Dtype)>,
    dtype: Dtype,
    values: bool,
}

impl Tensors {
    fn put(&mut self, name: String, shape: &[usize], std: f32, mean: f32) {
        let n = shape.iter().product();
        let v = if self.values { self.rng.normal_vec(n, std).into_iter().map(|x| x + mean).collect() } else { Vec::new() };
        self.items.insert(name, (shape.to_vec(), v, self.dtype));
    }
    fn linear(&mut self, prefix: &str, inp: usize, out: usize, bias: bool) {
        self.put(format!("{prefix}.weight"), &[out, inp], 1.0 / (inp as f32).sqrt(), 0.0);
        if bias {
            self.put(format!("{prefix}.bias"), &[out], 0.1, 0.0);
        }
    }
    fn layer_norm(&mut self, prefix: &str, dim: usize) {
        self.put(format!("{prefix}.weight"), &[dim], 0.1, 1.0);
        self.put(format!("{prefix}.bias"), &[dim], 0.1, 0.0);
    }
}

fn tower(spec: &TinySpec) -> (usize, usize, &'static str) {
    if spec.siglip2 { (16, 40, "tiny-siglip2-giant-opt-patch16-384") } else { (14, 27, "tiny-siglip-so400m-patch14-384") }
}

/// Every tensor of the model `spec` describes, with random values when `values`.
fn tensors(spec: &TinySpec, values: bool) -> Tensors {
    let b = spec.backbone;
    let vocab = 256 + specials(b).len();
    let (patch, tower_layers, _) = tower(spec);
    let side = 384 / patch;
    let DecoderDims { width: d, heads, intermediate: inter, layers, .. } = spec.decoder;
    let kv = if b == Backbone::Llama { spec.decoder.kv_heads } else { heads };
    let hd = d / heads;

    let mut t = Tensors { rng: SplitMix64::new(spec.seed), items: BTreeMap::new(), dtype: Dtype::F32, values };
    // Vision tower (f32 shard): the base tower's last layer is already deleted, as in real checkpoints.
    t.put(format!("{}.weight", weights::patch_embedding()), &[C, 3, patch, patch], 1.0 / ((3 * patch * patch) as f32).sqrt(), 0.0);
    t.put(format!("{}.bias", weights::patch_embedding()), &[C], 0.1, 0.0);
    t.put(weights::position_embedding(), &[side * side, C], 0.5, 0.0);
    for l in 0..tower_layers - 1 {
        let n = |p: &str| weights::vision_layer(l, p);
        t.layer_norm(&n("layer_norm1"), C);
        t.layer_norm(&n("layer_norm2"), C);
        for p in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"] {
            t.linear(&n(p), C, C, true);
        }
        t.linear(&n("mlp.fc1"), C, C_INTER, true);
        t.linear(&n("mlp.fc2"), C_INTER, C, true);
    }
    t.layer_norm("model.vision_tower.vision_tower.vision_model.post_layernorm", C);
    // The projectors in f16, everything else in bf16 as the published checkpoints store it:
    // every dtype the loader reads is exercised.
    t.dtype = Dtype::F16;
    t.linear(&weights::mm_projector(0), 3 * C, d, true);
    t.linear(&weights::mm_projector(2), d, d, true);
    t.linear(&weights::aux_projector(0), d, C, true);
    t.linear(&weights::aux_projector(2), C, C, true);
    t.dtype = Dtype::BF16;
    for k in 0..2 {
        let n = |p: &str| weights::interaction(k, p);
        t.put(format!("{}.weight", n("proj_in")), &[d, 2 * d], 1.0 / (2.0 * d as f32).sqrt(), 0.0);
        for p in ["proj_context", "cross_attn.q_proj.1", "cross_attn.k_proj.1", "cross_attn.v_proj.1", "cross_attn.o_proj", "proj_out.linear_1", "proj_out.linear_2"] {
            t.linear(&n(p), d, d, false);
        }
        for p in ["cross_attn.q_proj.0", "cross_attn.k_proj.0", "cross_attn.v_proj.0", "norm"] {
            t.layer_norm(&n(p), d);
        }
    }
    t.put(weights::embed_tokens(), &[vocab, d], 1.0, 0.0);
    for l in 0..layers {
        let lin = |w| weights::decoder_linear(b, l, w).trim_end_matches(".weight").to_owned();
        match b {
            Backbone::Phi => {
                t.linear(&lin(L::Qkv), d, (heads + 2 * kv) * hd, false);
                t.linear(&lin(L::GateUp), d, 2 * inter, false);
            }
            Backbone::Llama => {
                t.linear(&lin(L::Q), d, heads * hd, false);
                t.linear(&lin(L::K), d, kv * hd, false);
                t.linear(&lin(L::V), d, kv * hd, false);
                t.linear(&lin(L::Gate), d, inter, false);
                t.linear(&lin(L::Up), d, inter, false);
            }
        }
        t.linear(&lin(L::O), heads * hd, d, false);
        t.linear(&lin(L::Down), inter, d, false);
        for n in ["input_layernorm", "post_attention_layernorm"] {
            t.put(weights::decoder_norm(l, n), &[d], 0.1, 1.0);
        }
    }
    t.put(weights::final_norm(), &[d], 0.1, 1.0);
    t.put(weights::lm_head(), &[vocab, d], 1.0 / (d as f32).sqrt(), 0.0);
    if let Some(name) = &spec.omit {
        t.items.remove(name);
    }
    t
}

/// Write a tiny checkpoint into `dir` (created if needed).
pub fn write_tiny_checkpoint(dir: &Path, spec: &TinySpec) -> Result<()> {
    let io = |e| Error::io(dir, e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let t = tensors(spec, true);

    // Two shards: the tower, then the rest; the index maps every tensor to its shard.
    let shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let mine: Vec<(&String, &(Vec<usize>, Vec<f32>, Dtype))> = t.items.iter().filter(|(n, _)| n.starts_with("model.vision_tower") == (i == 0)).collect();
        let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = mine
            .iter()
            .map(|(n, (shape, v, dtype))| {
                let raw = match dtype {
                    Dtype::BF16 => v.iter().flat_map(|x| bf16::from_f32(*x).to_le_bytes()).collect(),
                    Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
                    _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                };
                ((*n).clone(), *dtype, shape.clone(), raw)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, dtype, shape, raw)| Ok((n.clone(), TensorView::new(*dtype, shape.clone(), raw).map_err(|e| Error::invalid(n, e.to_string()))?)))
            .collect::<Result<Vec<_>>>()?;
        let data = safetensors::serialize(views, None).map_err(|e| Error::invalid(*shard, e.to_string()))?;
        std::fs::write(dir.join(shard), data).map_err(io)?;
        for (n, _) in mine {
            weight_map.insert(n.clone(), json!(shard));
        }
    }
    write_json(&dir.join("model.safetensors.index.json"), &json!({"metadata": {}, "weight_map": weight_map}))?;
    let (config, vision, generation, tokenizer) = configs(spec);
    write_json(&dir.join("config.json"), &config)?;
    write_json(&dir.join("generation_config.json"), &generation)?;
    let tower_dir = dir.join(tower(spec).2);
    std::fs::create_dir_all(&tower_dir).map_err(io)?;
    write_json(&tower_dir.join("config.json"), &vision)?;
    write_json(&dir.join("tokenizer.json"), &tokenizer)
}

/// `config.json`, the tower's config, `generation_config.json` and `tokenizer.json`.
fn configs(spec: &TinySpec) -> (serde_json::Value, serde_json::Value, serde_json::Value, serde_json::Value) {
    let b = spec.backbone;
    let vocab = 256 + specials(b).len();
    let (patch, tower_layers, tower_name) = tower(spec);
    let DecoderDims { width: d, heads, intermediate: inter, layers, .. } = spec.decoder;
    let kv = if b == Backbone::Llama { spec.decoder.kv_heads } else { heads };
    let hd = d / heads;
    let specials_of = |name: &str| 256 + specials(b).iter().position(|s| *s == name).unwrap_or(0);
    let mut config = match b {
        Backbone::Phi => json!({
            "architectures": ["FusionPhiForCausalLM"], "model_type": "fusion_phi",
            "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.3, 1.6, 1.75, 2.05, 2.35, 2.5, 2.8], "long_factor": [1.0, 1.2875, 1.75, 2.7875, 4.0, 5.7875, 7.75, 10.2875]},
            "rope_theta": 10000.0, "original_max_position_embeddings": 4096,
            "bos_token_id": specials_of("<s>"), "eos_token_id": specials_of("<|endoftext|>"), "pad_token_id": 0,
        }),
        Backbone::Llama => json!({
            "architectures": ["FusionLlamaForCausalLM"], "model_type": "fusion_llama",
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
            "rope_theta": 500000.0, "head_dim": hd,
            "bos_token_id": specials_of("<|begin_of_text|>"), "eos_token_id": [specials_of("<|end_of_text|>"), specials_of("<|eom_id|>"), specials_of("<|eot_id|>")],
        }),
    };
    let common = json!({
        "hidden_size": d, "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "vocab_size": vocab, "rms_norm_eps": 1e-5, "max_position_embeddings": 131072,
        "tie_word_embeddings": false, "mm_vision_tower": tower_name, "mm_hidden_size": C, "mm_projector_type": "mlp2x_gelu",
        "mm_use_im_start_end": true, "mm_use_im_patch_token": false, "image_aspect_ratio": "static_hd",
        "query_len": "4,16,36,64,144", "window_size": 3, "num_of_vision_sampler_layers": 2,
        "start_of_vision_sampler_layers": 0, "stride_of_vision_sampler_layers": 3,
        "tokenizer_model_max_length": 4096, "tokenizer_padding_side": "right", "mm_patch_merge_type": "flat",
    });
    merge(&mut config, &common);
    merge(&mut config, &spec.config_overrides);
    let generation = json!({"eos_token_id": config["eos_token_id"].clone()});
    let vision = json!({"model_type": "siglip_vision_model", "hidden_size": C, "intermediate_size": C_INTER, "num_attention_heads": 2,
                        "num_hidden_layers": tower_layers, "patch_size": patch, "image_size": 384, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"});
    (config, vision, generation, tokenizer_json(b))
}

/// Write the model `spec` describes straight into the converted format (`manifest.json` and
/// int4 shards) with random weights: large models for memory tests without a multi-gigabyte
/// checkpoint to convert. Packed words are uniform random nibbles; scales keep every layer's
/// output at unit scale.
pub fn write_random_int4(dir: &Path, spec: &TinySpec, group: usize) -> Result<crate::manifest::Manifest> {
    use crate::convert::{Shards, storage};
    use crate::manifest::{DType, FORMAT, FORMAT_VERSION, MAX_SHARD_BYTES, Manifest};
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let t = tensors(spec, false);
    let mut rng = SplitMix64::new(spec.seed);
    let mut shards = Shards::new(dir, MAX_SHARD_BYTES);
    let mut entries = Vec::new();
    for (name, (shape, _, _)) in &t.items {
        let n: usize = shape.iter().product();
        let (name, shape) = (name.clone(), shape.clone());
        let entry = match storage(&name, &shape) {
            DType::Int4 => {
                let (rows, cols) = (shape[0], shape[1]);
                let words = rows * crate::quant::Int4Weight::words_per_row(cols, group);
                let packed: Vec<u32> = (0..words).map(|_| rng.next_u64() as u32).collect();
                // Uniform nibbles have a standard deviation of ≈ 4.6 steps.
                let scale = half::f16::from_f32(1.0 / (4.6 * (cols as f32).sqrt())).to_bits() as u32;
                let scales = vec![scale | scale << 16; (rows * crate::quant::Int4Weight::groups_per_row(cols, group)).div_ceil(2)];
                shards.tensor(name, shape, DType::Int4, bytemuck::cast_slice(&packed), Some((bytemuck::cast_slice(&scales), group)))?
            }
            DType::F16 => {
                let v: Vec<u16> = (0..n).map(|_| half::f16::from_f32(rng.normal() * 0.5).to_bits()).collect();
                shards.tensor(name, shape, DType::F16, bytemuck::cast_slice(&v), None)?
            }
            DType::F32 => {
                // Norm weights 1, biases 0.
                let fill = if name.ends_with(".bias") { 0.0f32 } else { 1.0 };
                shards.tensor(name, shape, DType::F32, bytemuck::cast_slice(&vec![fill; n]), None)?
            }
        };
        entries.push(entry);
    }
    let (config, vision, generation, tokenizer) = configs(spec);
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        config,
        vision_config: Some(vision),
        generation_config: Some(generation),
        tokenizer: Some("tokenizer.json".into()),
        shards: shards.finish()?,
        tensors: entries,
    };
    write_json(&dir.join("tokenizer.json"), &tokenizer)?;
    write_json(&dir.join("manifest.json"), &serde_json::to_value(&manifest).map_err(|e| Error::invalid("manifest", e.to_string()))?)?;
    Ok(manifest)
}

fn merge(into: &mut serde_json::Value, from: &serde_json::Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}
