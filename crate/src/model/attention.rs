//! Scaled dot-product attention as the decoder and the vision tower call it: our fused WGSL
//! kernel (`kernels::attention`), or burn's stock ops, kept so `fusion bench` can show what
//! the kernel gains and as a second implementation to test the first against.

use burn::tensor::{Tensor, TensorData, activation::softmax};

use crate::error::Result;
use crate::gpu::Gpu;
pub use crate::kernels::Mask;
pub use crate::kernels::attention::Keys;

/// Which implementation runs the operations we wrote kernels for besides the linear layers
/// (those follow the weight format): attention, and the decoder's RMSNorm, RoPE and SwiGLU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Ours: flash-style attention (no score matrix in memory, split-K for decode) and one
    /// launch each for RMSNorm, RoPE and SwiGLU.
    #[default]
    Fused,
    /// burn's ops: matmul + softmax over a materialised `[heads, S, T]` score matrix, and the
    /// element-wise formulas as tensor expressions (several launches each).
    Stock,
}

/// `softmax(q·kᵀ/√hd + mask + bias)·v` over the first `keys` rows of `k` and `v`.
///
/// # Shapes
/// `q [heads, S, hd]`, `k`/`v [kv_heads, capacity ≥ keys, hd]`, `bias [keys]` → `[heads, S, hd]`;
/// query head `h` reads kv head `h / (heads / kv_heads)`, as HF's `repeat_kv` lays them out.
// The arguments of attention itself (`kernels::attention::attention`) and the choice of kernels.
#[allow(clippy::too_many_arguments)]
pub fn attend<'a>(
    gpu: &Gpu,
    imp: Kernels,
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    keys: impl Into<Keys<'a>>,
    mask: Mask,
    bias: Option<Tensor<1>>,
) -> Result<Tensor<3>> {
    let keys = keys.into();
    match imp {
        Kernels::Fused => crate::kernels::attention(gpu, q, k, v, keys, mask, bias),
        Kernels::Stock => {
            let [kv, _, hd] = k.dims();
            let t = keys.count;
            Ok(stock(gpu, q, k.slice([0..kv, 0..t, 0..hd]), v.slice([0..kv, 0..t, 0..hd]), mask, bias))
        }
    }
}

fn stock(gpu: &Gpu, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, mask: Mask, bias: Option<Tensor<1>>) -> Tensor<3> {
    let [h, s, hd] = q.dims();
    let [kv, t, _] = k.dims();
    let expand = |x: Tensor<3>| x.unsqueeze_dim::<4>(1).expand([kv, h / kv, t, hd]).reshape([h, t, hd]);
    let mut scores = q.matmul(expand(k).swap_dims(1, 2)) * (hd as f64).powf(-0.5);
    if mask == Mask::Causal && s > 1 {
        let past = t - s;
        let causal: Vec<f32> =
            (0..s).flat_map(|i| (0..t).map(move |j| if j > past + i { f32::MIN } else { 0.0 })).collect();
        scores = scores + Tensor::<2>::from_data(TensorData::new(causal, [s, t]), gpu.device()).unsqueeze::<3>();
    }
    if let Some(b) = bias {
        scores = scores + b.reshape([1, 1, t]);
    }
    softmax(scores, 2).matmul(expand(v))
}
