//! Context-aware recursive alignment decoding (spec §5): latent tokens pooled from the global
//! tile grid, and the interaction layers that re-read the grid for each latent, conditioned on
//! the question's last token, after the listed decoder layers during prefill.
//!
//! Reference: `fusion/model/vision_sampler.py` (`VisionTokenSampler`, `VisionCrossAttentionLayer`,
//! `CrossAttention`, `MLP`) and `fusion_arch.py::prepare_inputs_labels_for_multimodal`.

use burn::tensor::{
    Int, Tensor, TensorData,
    activation::{gelu, softmax},
};

use super::linear::Linear;
use super::norm::LayerNorm;
use super::params::Params;
use crate::config::INTERACTION_HEADS;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::weights;

/// LayerNorm eps of the interaction layers (PyTorch's default).
const EPS: f64 = 1e-5;

/// PyTorch's adaptive pooling window for output `i`: `[⌊i·L/out⌋, ⌈(i+1)·L/out⌉)`.
fn window(i: usize, len: usize, out: usize) -> std::ops::Range<usize> {
    (i * len / out)..((i + 1) * len).div_ceil(out)
}

/// `adaptive_max_pool2d` of a row-major `side×side` grid of `D`-vectors to `out×out`, flattened
/// row-major. Max is separable, so rows are pooled first, then columns: `2·out` slices instead
/// of `out²` windows.
///
/// # Shapes
/// `grid [side·side, D] → [out·out, D]`
pub fn adaptive_max_pool(grid: Tensor<2>, side: usize, out: usize) -> Tensor<2> {
    let d = grid.dims()[1];
    let grid = grid.reshape([side, side, d]);
    let rows: Vec<Tensor<3>> = (0..out).map(|i| grid.clone().slice([window(i, side, out)]).max_dim(0)).collect();
    let rows = Tensor::cat(rows, 0); // [out, side, d]
    let cols: Vec<Tensor<3>> =
        (0..out).map(|j| rows.clone().slice([0..out, window(j, side, out)]).max_dim(1)).collect();
    Tensor::cat(cols, 1).reshape([out * out, d])
}

/// PyTorch `interpolate(mode="bilinear", align_corners=False)` weights from `len` to `out`
/// samples, without antialiasing, as a row-major `[out, len]` matrix.
pub fn bilinear_weights(len: usize, out: usize) -> Vec<f32> {
    let mut w = vec![0f32; out * len];
    let scale = len as f32 / out as f32;
    for i in 0..out {
        let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(len - 1);
        let i1 = (i0 + 1).min(len - 1);
        let l1 = src - i0 as f32;
        w[i * len + i0] += 1.0 - l1;
        w[i * len + i1] += l1;
    }
    w
}

/// Bilinear resize of a row-major `side×side` grid of `D`-vectors to `out×out` (FUSION-L), as
/// two matrix products: rows, then columns.
///
/// # Shapes
/// `grid [side·side, D] → [out·out, D]`
pub fn bilinear_resize(gpu: &Gpu, grid: Tensor<2>, side: usize, out: usize) -> Tensor<2> {
    let d = grid.dims()[1];
    let r = Tensor::<2>::from_data(TensorData::new(bilinear_weights(side, out), [out, side]), gpu.device());
    let rows = r.clone().matmul(grid.reshape([side, side * d])).reshape([out, side, d]);
    let cols = r.matmul(rows.swap_dims(0, 1).reshape([side, out * d])).reshape([out, out, d]);
    cols.swap_dims(0, 1).reshape([out * out, d])
}

/// The context windows of every latent: latent `j` at `(r, c) = (j / q, j % q)` owns the `w×w`
/// block of the `wq×wq` context grid at rows `w·r..`, columns `w·c..` (`F.unfold`, kernel =
/// stride = w). Order inside a block is irrelevant: the attention has no positions.
///
/// # Shapes
/// `ctx [w²Q, D] → [Q, w², D]`
pub fn context_windows(gpu: &Gpu, ctx: Tensor<2>, q: usize, w: usize) -> Tensor<3> {
    let d = ctx.dims()[1];
    let side = w * q;
    let index: Vec<i64> = (0..q * q)
        .flat_map(|j| {
            let (r, c) = (j / q, j % q);
            (0..w * w).map(move |t| ((w * r + t / w) * side + w * c + t % w) as i64)
        })
        .collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [q * q * w * w]), gpu.device());
    ctx.select(0, index).reshape([q * q, w * w, d])
}

/// One `VisionTokenSampler` (one `VisionCrossAttentionLayer`).
pub struct Interaction {
    proj_in: Linear,
    proj_context: Linear,
    ln_q: LayerNorm,
    ln_k: LayerNorm,
    ln_v: LayerNorm,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    norm: LayerNorm,
    linear_1: Linear,
    linear_2: Linear,
}

impl Interaction {
    pub fn load(p: &mut Params, k: usize, d: usize) -> Result<Self> {
        let name = |part: &str| weights::interaction(k, part);
        Ok(Self {
            proj_in: p.linear(&name("proj_in"), 2 * d, d, false)?,
            proj_context: p.linear(&name("proj_context"), d, d, false)?,
            ln_q: p.layer_norm(&name("cross_attn.q_proj.0"), d, EPS)?,
            ln_k: p.layer_norm(&name("cross_attn.k_proj.0"), d, EPS)?,
            ln_v: p.layer_norm(&name("cross_attn.v_proj.0"), d, EPS)?,
            wq: p.linear(&name("cross_attn.q_proj.1"), d, d, false)?,
            wk: p.linear(&name("cross_attn.k_proj.1"), d, d, false)?,
            wv: p.linear(&name("cross_attn.v_proj.1"), d, d, false)?,
            wo: p.linear(&name("cross_attn.o_proj"), d, d, false)?,
            norm: p.layer_norm(&name("norm"), d, EPS)?,
            linear_1: p.linear(&name("proj_out.linear_1"), d, d, false)?,
            linear_2: p.linear(&name("proj_out.linear_2"), d, d, false)?,
        })
    }

    /// New latent rows (spec §5.3): `proj_in([t; lat])` queries its window of context through
    /// 16-head cross-attention, then a post-norm residual, an MLP, and the latent's own residual.
    ///
    /// # Shapes
    /// `query_state [D]` (the last prompt token's hidden state), `latents [Q, D]`,
    /// `windows [Q, w², D]` → `[Q, D]`
    pub fn forward(
        &self,
        gpu: &Gpu,
        query_state: Tensor<1>,
        latents: Tensor<2>,
        windows: Tensor<3>,
    ) -> Result<Tensor<2>> {
        let [q, d] = latents.dims();
        let keys = windows.dims()[1];
        let heads = INTERACTION_HEADS;
        let hd = d / heads;
        let t = query_state.unsqueeze::<2>().expand([q, d]);
        let x = self.proj_in.forward(gpu, Tensor::cat(vec![t, latents.clone()], 1))?;
        let kv = self.proj_context.forward(gpu, windows)?;
        let qh = self.wq.forward(gpu, self.ln_q.forward(x.clone()))?.reshape([q, heads, 1, hd]);
        let kh = self.wk.forward(gpu, self.ln_k.forward(kv.clone()))?.reshape([q, keys, heads, hd]).swap_dims(1, 2);
        let vh = self.wv.forward(gpu, self.ln_v.forward(kv))?.reshape([q, keys, heads, hd]).swap_dims(1, 2);
        let scores = qh.matmul(kh.swap_dims(2, 3)) * (hd as f64).powf(-0.5); // [Q, heads, 1, w²]
        let attn = softmax(scores, 3).matmul(vh).reshape([q, d]);
        let y = self.norm.forward(self.wo.forward(gpu, attn)? + x);
        let out = self.linear_2.forward(gpu, gelu(self.linear_1.forward(gpu, y)?))?;
        Ok(out + latents)
    }
}

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn bilinear_weights_match_pytorch() {
        // interpolate([0, 1, 2, 3], size=2, bilinear, align_corners=False) = [0.5, 2.5]
        let w = super::bilinear_weights(4, 2);
        let ramp = [0.0f32, 1.0, 2.0, 3.0];
        let out: Vec<f32> = (0..2).map(|i| (0..4).map(|j| w[i * 4 + j] * ramp[j]).sum()).collect();
        assert_eq!(out, vec![0.5, 2.5]);
        // Upsampling clamps at both edges and every row sums to 1.
        let w = super::bilinear_weights(3, 7);
        assert!((0..7).all(|i| ((0..3).map(|j| w[i * 3 + j]).sum::<f32>() - 1.0).abs() < 1e-6));
    }

    #[test]
    fn adaptive_windows_match_pytorch() {
        // 54 → 4: PyTorch windows [0,14) [13,27) [27,41) [40,54) overlap.
        let w: Vec<_> = (0..4).map(|i| window(i, 54, 4)).collect();
        assert_eq!(w, vec![0..14, 13..27, 27..41, 40..54]);
        assert_eq!(window(0, 54, 54), 0..1);
    }
}
