//! The SigLIP / SigLIP2 vision tower with FUSION's text-guided unified encoding (spec §3).
//!
//! Reference: `fusion/model/multimodal_encoder/siglip_encoder.py` and `siglip2_encoder.py` at
//! `starriver030515/FUSION@c40f93f`. The tower keeps all but the base model's last layer,
//! never applies `post_layernorm`, and returns the feature connector
//! `[hs[last], mean(hs[0..E]), mean(hs[E..2E])]` over every row.

use burn::tensor::Tensor;

use super::attention::{Kernels, Mask, attend};
use super::linear::Linear;
use super::norm::{LayerNorm, gelu_tanh};
use super::params::Params;
use super::trace::{Trace, record};
use crate::config::{TowerKind, VisionConfig};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::weights;

struct VisionLayer {
    ln1: LayerNorm,
    qkv: Qkv,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// q, k and v: stacked into one matrix at load time where the format allows, so each layer runs
/// one GEMM of 3C outputs instead of three of C (a 729-row view gives a 64×64-tiled GEMM of C =
/// 1152 outputs only 216 workgroups, too few to fill a large GPU), or three.
enum Qkv {
    Stacked(Linear),
    Split(Linear, Linear, Linear),
}

impl Qkv {
    fn new(gpu: &Gpu, q: Linear, k: Linear, v: Linear) -> Result<Self> {
        Ok(match Linear::stack(gpu, &[&q, &k, &v])? {
            Some(qkv) => Qkv::Stacked(qkv),
            None => Qkv::Split(q, k, v),
        })
    }

    /// # Shapes
    /// `x [B, L, C] → 3 × [B, L, C]`
    fn forward(&self, gpu: &Gpu, x: Tensor<3>) -> Result<[Tensor<3>; 3]> {
        match self {
            Qkv::Stacked(w) => {
                let [b, l, c] = x.dims();
                let y = w.forward(gpu, x)?;
                Ok([0, 1, 2].map(|i| y.clone().slice([0..b, 0..l, i * c..(i + 1) * c])))
            }
            Qkv::Split(q, k, v) => Ok([q.forward(gpu, x.clone())?, k.forward(gpu, x.clone())?, v.forward(gpu, x)?]),
        }
    }
}

/// The question half of a text-guided encoding.
pub struct Question {
    /// `aux_projector(embed_tokens(ids))`, `[T, C]`.
    pub states: Tensor<2>,
    /// `ids != 0` per question token: id 0 is treated as padding and masked out of every
    /// layer's keys, bug-compatibly (spec §3.4, §10.4; for LLaMA-3 that is the token `!`).
    pub keep: Vec<bool>,
}

pub struct VisionTower {
    pub kind: TowerKind,
    pub width: usize,
    heads: usize,
    patch: usize,
    /// Patches per side of a 384 px view: 27 (so400m/14) or 24 (giant/16).
    pub side: usize,
    /// Conv2d(3→C, kernel = stride = patch) as a linear map of flattened `(c, y, x)` patches.
    patch_embed: Linear,
    /// `[N, C]`
    position: Tensor<2>,
    layers: Vec<VisionLayer>,
    pub kernels: Kernels,
}

impl VisionTower {
    /// Widths come from tensor shapes (§10.8); the head count from the tower config.
    pub fn load(p: &mut Params, kind: TowerKind, config: &VisionConfig) -> Result<Self> {
        let weights::TowerShape { width, intermediate, patch, positions: n, layers: depth } =
            weights::TowerShape::from_shapes(|name| p.source.shape(name))?;
        let (pos_name, patch_name) = (weights::position_embedding(), format!("{}.weight", weights::patch_embedding()));
        let side = config.image_size / patch;
        if side * side != n {
            return Err(Error::invalid(
                pos_name,
                format!("{n} positions do not make a square grid of {patch}-px patches over {} px", config.image_size),
            ));
        }
        if depth < 2 * kind.early_layers() {
            return Err(Error::invalid(
                "vision tower",
                format!(
                    "{depth} encoder layers; a {kind:?} tower needs at least {} for its feature connector",
                    2 * kind.early_layers()
                ),
            ));
        }
        let heads = config.num_attention_heads;
        if heads == 0 || width % heads != 0 {
            return Err(Error::invalid("vision tower", format!("width {width} is not a multiple of {heads} heads")));
        }
        let eps = config.layer_norm_eps;

        let w = p.host(&patch_name, &[width, 3, patch, patch])?;
        let bias = p.vector(&format!("{}.bias", weights::patch_embedding()), width)?;
        let patch_embed = p.dense_from(w.data, 3 * patch * patch, width, Some(bias));
        let position = p.matrix(&pos_name, n, width)?;
        let layers = (0..depth)
            .map(|l| {
                let name = |part: &str| weights::vision_layer(l, part);
                let attn = |p: &mut Params, which: &str| {
                    p.linear(&name(&format!("self_attn.{which}_proj")), width, width, true)
                };
                let (q, k, v) = (attn(p, "q")?, attn(p, "k")?, attn(p, "v")?);
                Ok(VisionLayer {
                    ln1: p.layer_norm(&name("layer_norm1"), width, eps)?,
                    qkv: Qkv::new(p.gpu, q, k, v)?,
                    out: p.linear(&name("self_attn.out_proj"), width, width, true)?,
                    ln2: p.layer_norm(&name("layer_norm2"), width, eps)?,
                    fc1: p.linear(&name("mlp.fc1"), width, intermediate, true)?,
                    fc2: p.linear(&name("mlp.fc2"), intermediate, width, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { kind, width, heads, patch, side, patch_embed, position, layers, kernels: Kernels::default() })
    }

    pub fn patches(&self) -> usize {
        self.side * self.side
    }

    /// Cut normalised `[3, S, S]` views into flattened patches `[B·N, 3·p·p]` on the host. The
    /// conv has no padding, so pixels past `side·patch` (378 of 384 for so400m/14) are unused.
    fn patchify(&self, views: &[&[f32]], size: usize) -> Vec<f32> {
        let (p, side) = (self.patch, self.side);
        let mut out = Vec::with_capacity(views.len() * side * side * 3 * p * p);
        for view in views {
            for py in 0..side {
                for px in 0..side {
                    for c in 0..3 {
                        for y in 0..p {
                            let row = c * size * size + (py * p + y) * size + px * p;
                            out.extend_from_slice(&view[row..row + p]);
                        }
                    }
                }
            }
        }
        out
    }

    /// Encode `B` views, with or without the question (one question, so `B = 1` with it).
    /// Returns the connector features `[B, N(+T), 3C]`.
    ///
    /// # Shapes
    /// `views`: `B` slices of `[3, size, size]` normalised pixels.
    pub fn forward(
        &self,
        gpu: &Gpu,
        views: &[&[f32]],
        size: usize,
        question: Option<&Question>,
        mut trace: Option<&mut Trace>,
    ) -> Result<Tensor<3>> {
        let (b, n, c) = (views.len(), self.patches(), self.width);
        if views.iter().any(|v| v.len() != 3 * size * size) || size < self.side * self.patch {
            return Err(Error::shape(
                "vision tower",
                format!("views must be [3, {size}, {size}] with size ≥ {}", self.side * self.patch),
            ));
        }
        if question.is_some() && b != 1 {
            return Err(Error::shape("vision tower", "a question guides exactly one view"));
        }
        let pp = 3 * self.patch * self.patch;
        let pixels = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(self.patchify(views, size), [b * n, pp]),
            gpu.device(),
        );
        let patches =
            self.patch_embed.forward(gpu, pixels)?.reshape([b, n, c]) + self.position.clone().unsqueeze::<3>();

        // Question rows get no position embedding (spec §3.3).
        let (mut h, key_bias) = match question {
            Some(q) => {
                let t = q.keep.len();
                let h = Tensor::cat(vec![patches, q.states.clone().unsqueeze::<3>()], 1);
                let bias: Vec<f32> =
                    (0..n).map(|_| 0.0).chain(q.keep.iter().map(|&k| if k { 0.0 } else { f32::MIN })).collect();
                (h, Some(Tensor::<1>::from_data(burn::tensor::TensorData::new(bias, [n + t]), gpu.device())))
            }
            None => (patches, None),
        };

        let early = self.kind.early_layers();
        let mut early_sum = h.clone();
        let mut late_sum: Option<Tensor<3>> = None;
        record(&mut trace, || "vision.hidden_0".into(), &h);
        for (l, layer) in self.layers.iter().enumerate() {
            // The early-layer quirk (spec §3.6) only exists when the question is present.
            let quirk = question.is_some() && l < early;
            h = layer.forward(gpu, self.kernels, h, self.heads, key_bias.clone(), quirk.then_some(n))?;
            let i = l + 1; // h is hs[i]
            record(&mut trace, || format!("vision.hidden_{i}"), &h);
            if i < early {
                early_sum = early_sum + h.clone();
            } else if i < 2 * early {
                late_sum = Some(match late_sum {
                    Some(s) => s + h.clone(),
                    None => h.clone(),
                });
            }
        }
        let late_sum = late_sum.expect("depth ≥ 2·early was checked at load");
        Ok(Tensor::cat(vec![h, early_sum / early as f64, late_sum / early as f64], 2))
    }
}

impl VisionLayer {
    /// Pre-LN SigLIP layer. With `quirk_rows = Some(N)`, rows `N..` (the question) attend
    /// uniformly to every key, padded ones included: the reference overwrites
    /// `attn_weights[:, :N, N:]` on a `(batch, heads, rows, keys)` tensor, so `:N` spans the
    /// heads and `N:` the rows (spec §3.6). A uniform softmax makes their output the mean of V.
    ///
    /// # Shapes
    /// `h [B, L, C] → [B, L, C]`; `key_bias [L]`.
    fn forward(
        &self,
        gpu: &Gpu,
        attention: Kernels,
        h: Tensor<3>,
        heads: usize,
        key_bias: Option<Tensor<1>>,
        quirk_rows: Option<usize>,
    ) -> Result<Tensor<3>> {
        let [b, l, c] = h.dims();
        let hd = c / heads;
        let x = self.ln1.forward(h.clone());
        let split = |t: Tensor<3>| t.reshape([b, l, heads, hd]).swap_dims(1, 2);
        let [q, k, v] = self.qkv.forward(gpu, x)?.map(split);
        // The quirk rows need no attention: only the first `rows` query rows are computed.
        let rows = quirk_rows.unwrap_or(l);
        let flat = |t: Tensor<4>, len: usize| t.reshape([b * heads, len, hd]);
        let q = flat(q.slice([0..b, 0..heads, 0..rows]), rows);
        let mut attn = attend(gpu, attention, q, flat(k, l), flat(v.clone(), l), l, Mask::Full, key_bias)?
            .reshape([b, heads, rows, hd]);
        if rows < l {
            let mean_v = v.mean_dim(2).expand([b, heads, l - rows, hd]);
            attn = Tensor::cat(vec![attn, mean_v], 2);
        }
        let attn = attn.swap_dims(1, 2).reshape([b, l, c]);
        let h = h + self.out.forward(gpu, attn)?;
        let m = self.fc2.forward(gpu, gelu_tanh(self.fc1.forward(gpu, self.ln2.forward(h.clone()))?))?;
        Ok(h + m)
    }
}
