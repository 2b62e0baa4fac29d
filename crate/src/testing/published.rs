//! The files the published repositories hold besides the weights: `config.json` as the
//! reference's training saves it (the base model's config plus FUSION's fields), the base
//! model's `generation_config.json`, and the tokenizer files.
//!
//! Where the values come from: the reference's `fusion/train/train.py` and `fusion_arch.py`
//! (the fields and their defaults: `query_len` "4,16,36,64,144", 10 interaction layers from
//! layer 0 every 3, `mm_vision_select_layer` -2, `tokenizer_model_max_length` 4096, 3072 for
//! FUSION-X-LLaMA3.1-8B, spec §9), Phi-3.5-mini-instruct's and LLaMA-3.1-8B-Instruct's
//! published configs (RoPE, ids, generation settings) and tokenizer configs. Inferred: the
//! vocabularies (32013, 128258) follow from the reference resizing the embedding to its
//! tokenizer's length after adding the two vision tokens; `mm_hidden_size` here is the tiny
//! tower's width (the published 1152/1536 go with the real towers); the training-only fields
//! (`tune_mm_mlp_adapter`, learning rates, …) are saved but nothing reads them.

use std::path::Path;

use serde_json::{Value, json};

use super::{TinySpec, write_json};
use crate::config::Backbone;
use crate::error::{Error, Result};

/// Phi-3.5-mini-instruct's long-RoPE factors, one per rotated pair of its 96-wide heads.
const PHI_LONG_FACTOR: [f64; 48] = [
    1.0800000429153442,
    1.1100000143051147,
    1.1399999856948853,
    1.340000033378601,
    1.5899999141693115,
    1.600000023841858,
    1.6200000047683716,
    2.620000123977661,
    3.2300000190734863,
    3.2300000190734863,
    4.789999961853027,
    7.400000095367432,
    7.700000286102295,
    9.09000015258789,
    12.199999809265137,
    17.670000076293945,
    24.46000099182129,
    28.57000160217285,
    30.420001983642578,
    30.840002059936523,
    32.590003967285156,
    32.93000411987305,
    42.320003509521484,
    44.96000289916992,
    50.340003967285156,
    50.45000457763672,
    57.55000305175781,
    57.93000411987305,
    58.21000289916992,
    60.1400032043457,
    62.61000442504883,
    62.62000274658203,
    62.71000289916992,
    63.1400032043457,
    63.1400032043457,
    63.77000427246094,
    63.93000411987305,
    63.96000289916992,
    63.970001220703125,
    64.02999877929688,
    64.06999969482422,
    64.08000183105469,
    64.12000274658203,
    64.41000366210938,
    64.4800033569336,
    64.51000213623047,
    64.52999877929688,
    64.83999633789062,
];
const PHI_SHORT_FACTOR: [f64; 48] = [
    1.0,
    1.0199999809265137,
    1.0299999713897705,
    1.0299999713897705,
    1.0499999523162842,
    1.0499999523162842,
    1.0499999523162842,
    1.0499999523162842,
    1.0499999523162842,
    1.0699999332427979,
    1.0999999046325684,
    1.1099998950958252,
    1.1599998474121094,
    1.1599998474121094,
    1.1699998378753662,
    1.2899998426437378,
    1.339999794960022,
    1.679999828338623,
    1.7899998426437378,
    1.8199998140335083,
    1.8499997854232788,
    1.8799997568130493,
    1.9099997282028198,
    1.9399996995925903,
    1.9899996519088745,
    2.0199997425079346,
    2.0199997425079346,
    2.0199997425079346,
    2.0199997425079346,
    2.0199997425079346,
    2.0199997425079346,
    2.0299997329711914,
    2.0299997329711914,
    2.0299997329711914,
    2.0299997329711914,
    2.0299997329711914,
    2.0299997329711914,
    2.0299997329711914,
    2.0299997329711914,
    2.0299997329711914,
    2.0799996852874756,
    2.0899996757507324,
    2.189999580383301,
    2.2199995517730713,
    2.5899994373321533,
    2.729999542236328,
    2.749999523162842,
    2.8399994373321533,
];

/// The published repository's name of a model of this spec.
pub fn repository(spec: &TinySpec) -> &'static str {
    match (spec.backbone, spec.siglip2) {
        (Backbone::Phi, false) => "FUSION-Phi3.5-3B",
        (Backbone::Phi, true) => "FUSION-X-Phi3.5-3B",
        (Backbone::Llama, false) => "FUSION-LLaMA3.1-8B",
        (Backbone::Llama, true) => "FUSION-X-LLaMA3.1-8B",
    }
}

/// `config.json` and `generation_config.json`.
pub(super) fn configs(spec: &TinySpec) -> (Value, Value) {
    let d = spec.dims();
    let tower = if spec.siglip2 { "google/siglip2-giant-opt-patch16-384" } else { "google/siglip-so400m-patch14-384" };
    let (mut config, generation) = match spec.backbone {
        Backbone::Phi => {
            // Phi-3.5's 48 factors fit its 96-wide heads; a spec with other heads gets rising ones.
            let pairs = d.head_dim / 2;
            let factors = |real: &[f64; 48], top: f64| -> Vec<f64> {
                if pairs == 48 {
                    real.to_vec()
                } else {
                    (0..pairs).map(|i| 1.0 + top * i as f64 / pairs as f64).collect()
                }
            };
            (
                json!({
                    "architectures": ["FusionPhiForCausalLM"], "model_type": "fusion_phi",
                    "attention_bias": false, "attention_dropout": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
                    "bos_token_id": 1, "eos_token_id": 32000, "pad_token_id": 32000,
                    "hidden_act": "silu", "initializer_range": 0.02, "rms_norm_eps": 1e-5,
                    "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
                    "rope_scaling": {"type": "longrope", "long_factor": factors(&PHI_LONG_FACTOR, 64.0), "short_factor": factors(&PHI_SHORT_FACTOR, 2.0)},
                    "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": false,
                }),
                json!({"_from_model_config": true, "bos_token_id": 1, "eos_token_id": [32007, 32001, 32000], "pad_token_id": 32000, "transformers_version": "4.48.1"}),
            )
        }
        Backbone::Llama => (
            json!({
                "architectures": ["FusionLlamaForCausalLM"], "model_type": "fusion_llama",
                "attention_bias": false, "attention_dropout": 0.0, "mlp_bias": false, "pretraining_tp": 1,
                "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
                "head_dim": d.head_dim, "hidden_act": "silu", "initializer_range": 0.02, "rms_norm_eps": 1e-5,
                "max_position_embeddings": 131072,
                "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                "rope_theta": 500000.0, "tie_word_embeddings": false,
            }),
            json!({"bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128008, 128009], "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.48.1"}),
        ),
    };
    let max_length = if spec.backbone == Backbone::Llama && spec.siglip2 { 3072 } else { 4096 };
    let fusion = json!({
        "_name_or_path": format!("starriver030515/{}", repository(spec)),
        "hidden_size": d.hidden, "intermediate_size": d.intermediate, "num_hidden_layers": d.layers,
        "num_attention_heads": d.heads, "num_key_value_heads": d.kv_heads, "vocab_size": d.vocab,
        "torch_dtype": "bfloat16", "transformers_version": "4.48.1", "use_cache": true,
        "mm_vision_tower": tower, "use_mm_proj": true, "mm_projector_type": "mlp2x_gelu",
        "mm_hidden_size": d.tower.width, "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
        "mm_patch_merge_type": "flat", "query_len": "4,16,36,64,144", "window_size": 3,
        "num_of_vision_sampler_layers": spec.interactions, "start_of_vision_sampler_layers": 0,
        "stride_of_vision_sampler_layers": 3, "image_aspect_ratio": "static_hd",
        "tokenizer_padding_side": "right", "tokenizer_model_max_length": max_length,
        "tune_mm_mlp_adapter": false, "freeze_mm_mlp_adapter": false, "unfreeze_mm_vision_tower": true,
        "mm_use_im_start_end": true, "mm_use_im_patch_token": false, "mm_projector_lr": null, "mm_vision_tower_lr": null,
    });
    super::merge(&mut config, &fusion);
    super::merge(&mut config, &spec.config_overrides);
    (config, generation)
}

/// The tokenizer files as the repository ships them: Phi-3.5's slow tokenizer (a synthetic
/// SentencePiece BPE model with Phi's 32000-piece layout), LLaMA-3.1's `tokenizer.json` (a
/// byte-level stand-in with the real special tokens at their ids).
pub(super) fn write_tokenizer(dir: &Path, backbone: Backbone) -> Result<()> {
    match backbone {
        Backbone::Phi => {
            let path = dir.join("tokenizer.model");
            std::fs::write(&path, sentencepiece_model()).map_err(|e| Error::io(&path, e))?;
            let (config, map, added) = phi_tokenizer_configs();
            write_json(&dir.join("tokenizer_config.json"), &config)?;
            write_json(&dir.join("special_tokens_map.json"), &map)?;
            write_json(&dir.join("added_tokens.json"), &added)
        }
        Backbone::Llama => write_json(&dir.join("tokenizer.json"), &llama_tokenizer_json()),
    }
}

/// Phi-3's added tokens after the 32000 pieces, then the two the reference adds.
const PHI_ADDED: [&str; 13] = [
    "<|endoftext|>",
    "<|assistant|>",
    "<|placeholder1|>",
    "<|placeholder2|>",
    "<|placeholder3|>",
    "<|placeholder4|>",
    "<|system|>",
    "<|end|>",
    "<|placeholder5|>",
    "<|placeholder6|>",
    "<|user|>",
    "<vision_start>",
    "<vision_end>",
];

/// `tokenizer_config.json`, `special_tokens_map.json` and `added_tokens.json` as FUSION's
/// training saves them: Phi-3.5-mini-instruct's (no BOS added, not legacy, the turn markers
/// eat the whitespace after them), pad = unk = `<unk>`, the vision tokens special.
fn phi_tokenizer_configs() -> (Value, Value, Value) {
    let token = |content: &str, rstrip: bool, special: bool| json!({"content": content, "lstrip": false, "normalized": false, "rstrip": rstrip, "single_word": false, "special": special});
    let mut decoder = serde_json::Map::new();
    decoder.insert("0".into(), token("<unk>", false, true));
    decoder.insert("1".into(), token("<s>", false, true));
    decoder.insert("2".into(), token("</s>", true, false));
    let mut added = serde_json::Map::new();
    for (i, t) in PHI_ADDED.iter().enumerate() {
        let rstrip = t.starts_with("<|") && *t != "<|endoftext|>";
        decoder.insert((32000 + i).to_string(), token(t, rstrip, true));
        added.insert((*t).into(), json!(32000 + i));
    }
    let config = json!({
        "add_bos_token": false, "add_eos_token": false, "add_prefix_space": true, "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<vision_start>", "<vision_end>"], "bos_token": "<s>",
        "clean_up_tokenization_spaces": false, "eos_token": "<|endoftext|>", "legacy": false,
        "model_max_length": 4096, "pad_token": "<unk>", "padding_side": "right", "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": false,
    });
    let plain =
        |c: &str| json!({"content": c, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false});
    let map = json!({
        "additional_special_tokens": [plain("<vision_start>"), plain("<vision_end>")],
        "bos_token": plain("<s>"), "eos_token": plain("<|endoftext|>"), "pad_token": "<unk>", "unk_token": "<unk>",
    });
    (config, map, Value::Object(added))
}

/// A SentencePiece BPE `ModelProto` with Phi-3's (LLaMA-2's) layout: `<unk>`, `<s>`, `</s>`,
/// the 256 byte pieces, then 31741 normal pieces (single characters, `▁`-words of two
/// letters, letter pairs, then filler), scored by rank; byte fallback, identity normaliser.
fn sentencepiece_model() -> Vec<u8> {
    let mut pieces: Vec<(String, u64)> = vec![("<unk>".into(), 2), ("<s>".into(), 3), ("</s>".into(), 3)];
    pieces.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 6)));
    let letters: Vec<char> = ('a'..='z').collect();
    let mut normal: Vec<String> = vec!["▁".into()];
    normal.extend(('!'..='~').map(String::from));
    normal.extend(letters.iter().map(|c| format!("▁{c}")));
    for a in &letters {
        for b in &letters {
            normal.push(format!("{a}{b}"));
            normal.push(format!("▁{a}{b}"));
        }
    }
    let mut n = 0;
    while pieces.len() + normal.len() < 32000 {
        normal.push(format!("▁filler{n}"));
        n += 1;
    }
    pieces.extend(normal.into_iter().map(|p| (p, 1)));
    let mut out = Vec::new();
    for (i, (piece, kind)) in pieces.iter().enumerate() {
        let mut p = Vec::new();
        proto::bytes(&mut p, 1, piece.as_bytes());
        let score = if *kind == 1 { -(i as f32) } else { 0.0 };
        proto::fixed32(&mut p, 2, score.to_bits());
        proto::varint(&mut p, 3, *kind);
        proto::bytes(&mut out, 1, &p);
    }
    let mut trainer = Vec::new();
    proto::varint(&mut trainer, 3, 2); // BPE
    proto::varint(&mut trainer, 35, 1); // byte_fallback
    proto::bytes(&mut out, 2, &trainer);
    let mut normalizer = Vec::new();
    proto::bytes(&mut normalizer, 1, b"identity");
    proto::varint(&mut normalizer, 3, 1); // add_dummy_prefix
    proto::varint(&mut normalizer, 4, 0); // remove_extra_whitespaces
    proto::bytes(&mut out, 3, &normalizer);
    out
}

/// Protobuf wire format, what [`sentencepiece_model`] writes.
mod proto {
    fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
        raw_varint(out, field << 3 | wire);
    }
    fn raw_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    pub fn varint(out: &mut Vec<u8>, field: u64, v: u64) {
        key(out, field, 0);
        raw_varint(out, v);
    }
    pub fn fixed32(out: &mut Vec<u8>, field: u64, v: u32) {
        key(out, field, 5);
        out.extend(v.to_le_bytes());
    }
    pub fn bytes(out: &mut Vec<u8>, field: u64, v: &[u8]) {
        key(out, field, 2);
        raw_varint(out, v.len() as u64);
        out.extend(v);
    }
}

/// A byte-level `tokenizer.json` with LLaMA-3.1's special tokens at their ids (128000-128255,
/// the reserved ones named as 3.1 names them) and the two vision tokens after them; the
/// real one (128000 BPE tokens) is in `tests/fixtures/tokenizers`' test.
fn llama_tokenizer_json() -> Value {
    let mut json = super::tokenizer_json(Backbone::Llama);
    let named = [
        (128000, "<|begin_of_text|>"),
        (128001, "<|end_of_text|>"),
        (128004, "<|finetune_right_pad_id|>"),
        (128006, "<|start_header_id|>"),
        (128007, "<|end_header_id|>"),
        (128008, "<|eom_id|>"),
        (128009, "<|eot_id|>"),
        (128010, "<|python_tag|>"),
        (128256, "<vision_start>"),
        (128257, "<vision_end>"),
    ];
    let mut reserved = 0;
    let added: Vec<Value> = (128000..128258)
        .map(|id| {
            let content = match named.iter().find(|(i, _)| *i == id) {
                Some((_, name)) => (*name).to_owned(),
                None => {
                    reserved += 1;
                    format!("<|reserved_special_token_{}|>", reserved - 1)
                }
            };
            json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json["added_tokens"] = Value::Array(added);
    json["post_processor"]["special_tokens"]["<|begin_of_text|>"]["ids"] = json!([128000]);
    json
}
