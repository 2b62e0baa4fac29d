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
#[derive(Clone, Copy, Debug)]
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

/// What fixes every tensor's shape: the decoder's config and the tower's widths, which the
/// loader reads off the checkpoint's own shapes ([`TowerShape::from_shapes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub backbone: Backbone,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub vocab: usize,
    pub interactions: usize,
    pub tower: TowerShape,
}

impl Dims {
    pub fn new(config: &crate::config::FusionConfig, tower: TowerShape) -> Self {
        Self {
            backbone: config.model_type,
            hidden: config.hidden_size,
            heads: config.num_attention_heads,
            kv_heads: config.kv_heads(),
            head_dim: config.head_dim(),
            intermediate: config.intermediate_size,
            layers: config.num_hidden_layers,
            vocab: config.vocab_size,
            interactions: config.num_of_vision_sampler_layers,
            tower,
        }
    }
}

/// The vision tower's shapes; `layers` are the encoder layers the checkpoint keeps (the base
/// tower's last one is deleted by the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TowerShape {
    pub width: usize,
    pub intermediate: usize,
    pub patch: usize,
    pub positions: usize,
    pub layers: usize,
}

impl TowerShape {
    /// Read off the tensors' shapes (`shape` of a name, `None` when missing): the width and
    /// the patch from the patch embedding, the positions from the position embedding, the MLP
    /// from layer 0's `fc1`, the depth by counting layers.
    pub fn from_shapes(shape: impl Fn(&str) -> Option<Vec<usize>>) -> crate::error::Result<Self> {
        use crate::error::Error;
        let get = |name: &str| shape(name).ok_or_else(|| Error::invalid(name, "tensor missing from the checkpoint"));
        let pos_name = position_embedding();
        let [positions, width] = get(&pos_name)?[..] else {
            return Err(Error::invalid(pos_name, "expected a 2-D tensor"));
        };
        let patch_name = format!("{}.weight", patch_embedding());
        let patch = match get(&patch_name)?[..] {
            [c, 3, ph, pw] if c == width && ph == pw => ph,
            ref s => {
                return Err(Error::invalid(
                    patch_name,
                    format!("expected [{width}, 3, p, p], the checkpoint has {s:?}"),
                ));
            }
        };
        let intermediate = get(&format!("{}.weight", vision_layer(0, "mlp.fc1")))?[0];
        let layers =
            (0..).take_while(|&l| shape(&format!("{}.weight", vision_layer(l, "layer_norm1"))).is_some()).count();
        Ok(Self { width, intermediate, patch, positions, layers })
    }
}

/// One tensor of a checkpoint: its name, shape, and whether the model reads it (the tower's
/// `post_layernorm` is saved but unused: the reference takes the features before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub used: bool,
}

/// Every tensor a FUSION checkpoint of these dimensions holds, in the reference's module order
/// (784 for FUSION-Phi3.5-3B, 880 for the 8B, 992 and 1088 for the X models).
pub fn layout(d: &Dims) -> Vec<TensorSpec> {
    let mut t = Layout(Vec::new());
    let TowerShape { width: c, intermediate: ci, patch, positions, layers: tower_layers } = d.tower;
    t.put(format!("{}.weight", patch_embedding()), &[c, 3, patch, patch]);
    t.put(format!("{}.bias", patch_embedding()), &[c]);
    t.put(position_embedding(), &[positions, c]);
    for l in 0..tower_layers {
        let n = |p: &str| vision_layer(l, p);
        t.norm(&n("layer_norm1"), c);
        t.norm(&n("layer_norm2"), c);
        for p in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"] {
            t.linear(&n(p), c, c, true);
        }
        t.linear(&n("mlp.fc1"), c, ci, true);
        t.linear(&n("mlp.fc2"), ci, c, true);
    }
    t.norm(&format!("{TOWER}.post_layernorm"), c);
    let h = d.hidden;
    t.linear(&mm_projector(0), 3 * c, h, true);
    t.linear(&mm_projector(2), h, h, true);
    t.linear(&aux_projector(0), h, c, true);
    t.linear(&aux_projector(2), c, c, true);
    for k in 0..d.interactions {
        let n = |p: &str| interaction(k, p);
        t.linear(&n("proj_in"), 2 * h, h, false);
        for p in [
            "proj_context",
            "cross_attn.q_proj.1",
            "cross_attn.k_proj.1",
            "cross_attn.v_proj.1",
            "cross_attn.o_proj",
            "proj_out.linear_1",
            "proj_out.linear_2",
        ] {
            t.linear(&n(p), h, h, false);
        }
        for p in ["cross_attn.q_proj.0", "cross_attn.k_proj.0", "cross_attn.v_proj.0", "norm"] {
            t.norm(&n(p), h);
        }
    }
    t.put(embed_tokens(), &[d.vocab, h]);
    let (q, kv, i) = (d.heads * d.head_dim, d.kv_heads * d.head_dim, d.intermediate);
    for l in 0..d.layers {
        let parts: &[(DecoderLinear, usize, usize)] = match d.backbone {
            Backbone::Phi => &[(DecoderLinear::Qkv, h, q + 2 * kv), (DecoderLinear::GateUp, h, 2 * i)],
            Backbone::Llama => &[
                (DecoderLinear::Q, h, q),
                (DecoderLinear::K, h, kv),
                (DecoderLinear::V, h, kv),
                (DecoderLinear::Gate, h, i),
                (DecoderLinear::Up, h, i),
            ],
        };
        for &(which, inp, out) in parts.iter().chain(&[(DecoderLinear::O, q, h), (DecoderLinear::Down, i, h)]) {
            t.linear(decoder_linear(d.backbone, l, which).trim_end_matches(".weight"), inp, out, false);
        }
        for n in ["input_layernorm", "post_attention_layernorm"] {
            t.put(decoder_norm(l, n), &[h]);
        }
    }
    t.put(final_norm(), &[h]);
    t.put(lm_head(), &[d.vocab, h]);
    let unused = format!("{TOWER}.post_layernorm.");
    for spec in &mut t.0 {
        spec.used = !spec.name.starts_with(&unused);
    }
    t.0
}

struct Layout(Vec<TensorSpec>);

impl Layout {
    fn put(&mut self, name: String, shape: &[usize]) {
        self.0.push(TensorSpec { name, shape: shape.to_vec(), used: true });
    }

    /// A PyTorch `Linear`: `weight [out, in]`, `bias [out]`.
    fn linear(&mut self, prefix: &str, inp: usize, out: usize, bias: bool) {
        self.put(format!("{prefix}.weight"), &[out, inp]);
        if bias {
            self.put(format!("{prefix}.bias"), &[out]);
        }
    }

    /// A `LayerNorm`: `weight` and `bias`, both `[dim]`.
    fn norm(&mut self, prefix: &str, dim: usize) {
        self.put(format!("{prefix}.weight"), &[dim]);
        self.put(format!("{prefix}.bias"), &[dim]);
    }
}
