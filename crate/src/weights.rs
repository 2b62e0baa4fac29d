//! Every checkpoint key, in one place (spec §7.1). Layers ask for their weights through these
//! functions; no key string is built anywhere else.

use crate::config::Backbone;

const TOWER: &str = "model.vision_tower.vision_tower.vision_model";

pub fn patch_embedding() -> String {
    format!("{TOWER}.embeddings.patch_embedding")
}

pub fn position_embedding() -> String {
    format!("{TOWER}.embeddings.position_embedding.weight")
}

/// `part` is one of `self_attn.{q,k,v,out}_proj`, `layer_norm{1,2}`, `mlp.fc{1,2}`.
pub fn vision_layer(layer: usize, part: &str) -> String {
    format!("{TOWER}.encoder.layers.{layer}.{part}")
}

/// Prefix of a vision encoder layer, to count how many the checkpoint has.
pub fn vision_layer_prefix(layer: usize) -> String {
    format!("{TOWER}.encoder.layers.{layer}.")
}

/// `model.mm_projector` (vision → LLM) or `model.aux_projector` (LLM → vision); `index` is the
/// Sequential index, 0 or 2 (1 is the parameter-free GELU).
pub fn mm_projector(index: usize) -> String {
    format!("model.mm_projector.{index}")
}

pub fn aux_projector(index: usize) -> String {
    format!("model.aux_projector.{index}")
}

/// `part` is one of `proj_in`, `proj_context`, `cross_attn.{q,k,v}_proj.{0,1}`, `cross_attn.o_proj`,
/// `norm`, `proj_out.linear_{1,2}`.
pub fn interaction(k: usize, part: &str) -> String {
    format!("model.vision_sampler_layers.{k}.layers.0.{part}")
}

pub fn embed_tokens() -> String {
    "model.embed_tokens.weight".into()
}

pub fn final_norm() -> String {
    "model.norm.weight".into()
}

pub fn lm_head() -> String {
    "lm_head.weight".into()
}

pub fn decoder_norm(layer: usize, which: &str) -> String {
    format!("model.layers.{layer}.{which}.weight")
}

/// The decoder's linear layers. Phi fuses q/k/v and gate/up into one matrix each.
pub enum DecoderLinear {
    Qkv,
    Q,
    K,
    V,
    O,
    GateUp,
    Gate,
    Up,
    Down,
}

pub fn decoder_linear(backbone: Backbone, layer: usize, which: DecoderLinear) -> String {
    let part = match (backbone, which) {
        (Backbone::Phi, DecoderLinear::Qkv) => "self_attn.qkv_proj",
        (Backbone::Phi, DecoderLinear::GateUp) => "mlp.gate_up_proj",
        (_, DecoderLinear::Q) => "self_attn.q_proj",
        (_, DecoderLinear::K) => "self_attn.k_proj",
        (_, DecoderLinear::V) => "self_attn.v_proj",
        (_, DecoderLinear::O) => "self_attn.o_proj",
        (_, DecoderLinear::Gate) => "mlp.gate_proj",
        (_, DecoderLinear::Up) => "mlp.up_proj",
        (_, DecoderLinear::Down) => "mlp.down_proj",
        (Backbone::Llama, DecoderLinear::Qkv) => "self_attn.qkv_proj",
        (Backbone::Llama, DecoderLinear::GateUp) => "mlp.gate_up_proj",
    };
    format!("model.layers.{layer}.{part}.weight")
}
