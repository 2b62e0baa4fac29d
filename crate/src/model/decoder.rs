//! The LLM decoders: Phi-3.5-mini (fused `qkv_proj`/`gate_up_proj`, long-RoPE) and LLaMA-3.1
//! (separate projections, GQA, llama3 RoPE) as transformers 4.48.1 runs them (spec §6).
//! FUSION only adds the interaction hook between layers, which `model/mod.rs` drives.

use burn::tensor::{Tensor, TensorData, activation::silu};
use cubecl::server::Handle;

use super::attention::{Kernels, Keys, Mask, attend};
use super::embedding::Embedding;
use super::kv_cache::KvCache;
use super::linear::Linear;
use super::norm::RmsNorm;
use super::params::Params;
use super::rope::Rope;
use crate::config::{Backbone, FusionConfig};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::embedding::Ids;
use crate::kernels::{CacheRows, Projections, rope_into_cache, swiglu};
use crate::weights::{self, DecoderLinear as L};

/// q, k, v: one fused matrix (Phi: rows q, then k, then v) or three.
enum Qkv {
    Fused(Linear),
    Split(Linear, Linear, Linear),
}

/// gate and up: one fused matrix (Phi: first half gate, second half up) or two.
enum GateUp {
    Fused(Linear),
    Split(Linear, Linear),
}

struct DecoderLayer {
    input_norm: RmsNorm,
    qkv: Qkv,
    o: Linear,
    post_norm: RmsNorm,
    gate_up: GateUp,
    down: Linear,
}

pub struct Decoder {
    pub width: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    pub vocab: usize,
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    pub kernels: Kernels,
}

impl Decoder {
    pub fn load(p: &mut Params, c: &FusionConfig) -> Result<Self> {
        let (d, h, kv, hd, i) = (c.hidden_size, c.num_attention_heads, c.kv_heads(), c.head_dim(), c.intermediate_size);
        let b = c.model_type;
        let eps = c.rms_norm_eps;
        let layers = (0..c.num_hidden_layers)
            .map(|l| {
                let lin = |which| weights::decoder_linear(b, l, which);
                let strip = |name: String| name.trim_end_matches(".weight").to_owned();
                // LLaMA's separate projections are stacked into Phi's fused layout where the
                // format allows: one matvec per decode step instead of three (q, k, v) and two
                // (gate, up), which matters because decode is bound by launches (BENCHMARKS.md).
                let qkv = match b {
                    Backbone::Phi => Qkv::Fused(p.linear(&strip(lin(L::Qkv)), d, (h + 2 * kv) * hd, false)?),
                    Backbone::Llama => {
                        let q = p.linear(&strip(lin(L::Q)), d, h * hd, false)?;
                        let k = p.linear(&strip(lin(L::K)), d, kv * hd, false)?;
                        let v = p.linear(&strip(lin(L::V)), d, kv * hd, false)?;
                        match Linear::stack(p.gpu, &[&q, &k, &v])? {
                            Some(qkv) => Qkv::Fused(qkv),
                            None => Qkv::Split(q, k, v),
                        }
                    }
                };
                let gate_up = match b {
                    Backbone::Phi => GateUp::Fused(p.linear(&strip(lin(L::GateUp)), d, 2 * i, false)?),
                    Backbone::Llama => {
                        let (gate, up) =
                            (p.linear(&strip(lin(L::Gate)), d, i, false)?, p.linear(&strip(lin(L::Up)), d, i, false)?);
                        match Linear::stack(p.gpu, &[&gate, &up])? {
                            Some(gate_up) => GateUp::Fused(gate_up),
                            None => GateUp::Split(gate, up),
                        }
                    }
                };
                Ok(DecoderLayer {
                    input_norm: p.rms_norm(&weights::decoder_norm(l, "input_layernorm"), d, eps)?,
                    qkv,
                    o: p.linear(&strip(lin(L::O)), h * hd, d, false)?,
                    post_norm: p.rms_norm(&weights::decoder_norm(l, "post_attention_layernorm"), d, eps)?,
                    gate_up,
                    down: p.linear(&strip(lin(L::Down)), i, d, false)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head_name = if c.tie_word_embeddings && p.source.shape(&weights::lm_head()).is_none() {
            weights::embed_tokens()
        } else {
            weights::lm_head()
        };
        Ok(Self {
            width: d,
            heads: h,
            kv_heads: kv,
            head_dim: hd,
            intermediate: i,
            vocab: c.vocab_size,
            embed: p.embedding(&weights::embed_tokens(), c.vocab_size, d)?,
            layers,
            norm: p.rms_norm(&weights::final_norm(), d, eps)?,
            lm_head: p.linear(lm_head_name.trim_end_matches(".weight"), d, c.vocab_size, false)?,
            rope: Rope::new(c)?,
            kernels: Kernels::default(),
        })
    }

    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// Token embeddings.
    ///
    /// # Shapes
    /// `ids [S] → [S, D]`
    pub fn embed(&self, gpu: &Gpu, ids: Ids) -> Result<Tensor<2>> {
        self.embed.forward(gpu, ids)
    }

    /// The inputs every layer shares for `len` new positions after `cache.len()` cached ones.
    pub fn step_inputs(&self, gpu: &Gpu, cache: &KvCache, len: usize) -> StepInputs {
        let (cos, sin) = self.rope.tables(cache.len(), len);
        let dev = gpu.device();
        StepInputs {
            cos: Tensor::from_data(TensorData::new(cos, [len, self.head_dim]), dev),
            sin: Tensor::from_data(TensorData::new(sin, [len, self.head_dim]), dev),
            positions: gpu.upload_u32(&StepInputs::positions(cache, len)),
        }
    }

    /// Rewrite `step` in place for `len` new positions after `cache.len()` cached ones: what a
    /// recorded decode step reads when it is replayed (`len` as when it was made).
    pub fn rewrite_step_inputs(&self, gpu: &Gpu, step: &StepInputs, cache: &KvCache, len: usize) -> Result<()> {
        const OP: &str = "decode step";
        let (cos, sin) = self.rope.tables(cache.len(), len);
        for (table, values) in [(&step.cos, cos), (&step.sin, sin)] {
            gpu.write_u32(&gpu.buffer_in_place(OP, table.clone())?.handle, bytemuck::cast_slice(&values));
        }
        gpu.write_u32(&step.positions, &StepInputs::positions(cache, len));
        Ok(())
    }

    /// One decoder layer over the new positions, appending their keys and values to `cache`.
    ///
    /// # Shapes
    /// `x [S, D] → [S, D]`
    pub fn layer(
        &self,
        gpu: &Gpu,
        index: usize,
        x: Tensor<2>,
        step: &StepInputs,
        cache: &mut KvCache,
    ) -> Result<Tensor<2>> {
        let layer = &self.layers[index];
        let [s, _] = x.dims();
        let (h, kv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let normed = |norm: &RmsNorm, x: &Tensor<2>| norm.forward(gpu, self.kernels, x.clone());
        // q, k and v side by side (one buffer for the RoPE kernel), and where each starts. With
        // our kernels the norm runs inside a decode step's projection (`forward_normed`).
        let x_qkv = match (&layer.qkv, self.kernels) {
            (Qkv::Fused(w), Kernels::Fused) => w.forward_normed(gpu, &layer.input_norm, x.clone())?,
            (Qkv::Fused(w), Kernels::Stock) => w.forward(gpu, normed(&layer.input_norm, &x)?)?,
            (Qkv::Split(wq, wk, wv), _) => {
                let n = normed(&layer.input_norm, &x)?;
                Tensor::cat(vec![wq.forward(gpu, n.clone())?, wk.forward(gpu, n.clone())?, wv.forward(gpu, n)?], 1)
            }
        };
        let projections = Projections { x: x_qkv, q: 0, k: h * hd, v: (h + kv) * hd };
        // q `[h, S, hd]` with RoPE applied; k (RoPE applied) and v written to the cache.
        let (q, k, v, keys) = match self.kernels {
            Kernels::Fused => {
                let (k, v) = cache.reserve(index, [kv, hd], s, gpu.device());
                let rows = CacheRows { k: &k, v: &v, start: cache.len(), positions: &step.positions };
                let q = rope_into_cache(gpu, projections, (h, hd), &step.cos, &step.sin, rows)?;
                (q, k, v, cache.len() + s)
            }
            Kernels::Stock => {
                let heads = |at: usize, n: usize| {
                    projections.x.clone().slice([0..s, at..at + n * hd]).reshape([s, n, hd]).swap_dims(0, 1)
                };
                let q = rotate(heads(projections.q, h), &step.cos, &step.sin);
                let k = rotate(heads(projections.k, kv), &step.cos, &step.sin);
                let (k, v, keys) = cache.append(index, k, heads(projections.v, kv));
                (q, k, v, keys)
            }
        };
        let keys = Keys { count: keys, on_gpu: Some(&step.positions) };
        let attn = attend(gpu, self.kernels, q, k, v, keys, Mask::Causal, None)?;
        // [h, S, hd] → [S, h·hd]; one position is already in that order (no copy).
        let attn = if s == 1 { attn.reshape([1, h * hd]) } else { attn.swap_dims(0, 1).reshape([s, h * hd]) };
        let x = layer.o.forward_add(gpu, attn, x)?;

        let i = self.intermediate;
        let activated = match (&layer.gate_up, self.kernels) {
            (GateUp::Fused(w), Kernels::Fused) => w.forward_swiglu_normed(gpu, &layer.post_norm, x.clone())?,
            (GateUp::Split(wg, wu), Kernels::Fused) => {
                let n = normed(&layer.post_norm, &x)?;
                swiglu(gpu, Tensor::cat(vec![wg.forward(gpu, n.clone())?, wu.forward(gpu, n)?], 1))?
            }
            (gate_up, Kernels::Stock) => {
                let normed = normed(&layer.post_norm, &x)?;
                let (gate, up) = match gate_up {
                    GateUp::Fused(w) => {
                        let gate_up = w.forward(gpu, normed)?;
                        (gate_up.clone().slice([0..s, 0..i]), gate_up.slice([0..s, i..2 * i]))
                    }
                    GateUp::Split(wg, wu) => (wg.forward(gpu, normed.clone())?, wu.forward(gpu, normed)?),
                };
                silu(gate) * up
            }
        };
        layer.down.forward_add(gpu, activated, x)
    }

    /// Final norm and `lm_head` on the last position.
    ///
    /// # Shapes
    /// `x [S, D] → logits [V]`
    pub fn logits(&self, gpu: &Gpu, x: Tensor<2>) -> Result<Tensor<1>> {
        let [s, d] = x.dims();
        let last = x.slice([s - 1..s, 0..d]);
        let logits = match self.kernels {
            Kernels::Fused => self.lm_head.forward_normed(gpu, &self.norm, last)?,
            Kernels::Stock => self.lm_head.forward(gpu, self.final_norm(gpu, last)?)?,
        };
        Ok(logits.reshape([self.vocab]))
    }

    pub fn final_norm(&self, gpu: &Gpu, x: Tensor<2>) -> Result<Tensor<2>> {
        self.norm.forward(gpu, self.kernels, x)
    }
}

/// Per-step inputs shared by every layer, on the GPU.
pub struct StepInputs {
    /// RoPE tables `[len, head_dim]`.
    cos: Tensor<2>,
    sin: Tensor<2>,
    /// `[first new position, keys after the step, 0, 0]`: the kernels read the cache row they
    /// write and the key count here rather than from their parameters, so that a recorded step
    /// replays at any position.
    positions: Handle,
}

impl StepInputs {
    fn positions(cache: &KvCache, len: usize) -> [u32; 4] {
        [cache.len() as u32, (cache.len() + len) as u32, 0, 0]
    }
}

/// `x·cos + rotate_half(x)·sin`, rotate-half (non-interleaved) layout.
///
/// # Shapes
/// `x [heads, S, hd]`, `cos`/`sin` `[S, hd]`
fn rotate(x: Tensor<3>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<3> {
    let [h, s, hd] = x.dims();
    let x1 = x.clone().slice([0..h, 0..s, 0..hd / 2]);
    let x2 = x.clone().slice([0..h, 0..s, hd / 2..hd]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 2);
    x * cos.clone().unsqueeze::<3>() + rotated * sin.clone().unsqueeze::<3>()
}
