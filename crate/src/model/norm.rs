//! LayerNorm (vision tower, interaction layers) and RMSNorm (decoders), in f32.

use burn::tensor::Tensor;

use super::attention::Kernels;
use crate::error::Result;
use crate::gpu::Gpu;

pub struct LayerNorm {
    /// `[dim]`
    pub weight: Tensor<1>,
    /// `[dim]`
    pub bias: Tensor<1>,
    pub eps: f64,
}

impl LayerNorm {
    /// # Shapes
    /// `x [..., dim] → [..., dim]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mean = x.clone().mean_dim(D - 1);
        let centered = x - mean;
        let var = centered.clone().square().mean_dim(D - 1);
        let normed = centered / (var + self.eps).sqrt();
        normed * self.weight.clone().unsqueeze::<D>() + self.bias.clone().unsqueeze::<D>()
    }
}

pub struct RmsNorm {
    /// `[dim]`
    pub weight: Tensor<1>,
    pub eps: f64,
}

impl RmsNorm {
    /// This norm for a kernel that applies it to its input (the int4 matvec).
    pub fn as_kernel_input(&self) -> crate::kernels::int4_matvec::Norm<'_> {
        crate::kernels::int4_matvec::Norm { weight: &self.weight, eps: self.eps }
    }

    /// # Shapes
    /// `x [rows, dim] → [rows, dim]`
    pub fn forward(&self, gpu: &Gpu, kernels: Kernels, x: Tensor<2>) -> Result<Tensor<2>> {
        match kernels {
            Kernels::Fused => crate::kernels::rms_norm(gpu, x, &self.weight, self.eps),
            Kernels::Stock => {
                let rms = (x.clone().square().mean_dim(1) + self.eps).sqrt();
                Ok((x / rms) * self.weight.clone().unsqueeze::<2>())
            }
        }
    }
}

/// GELU with the tanh approximation (`gelu_pytorch_tanh`, the vision tower's activation).
/// Written out with `x·x·x`: a `pow` with a negative base is undefined in WGSL.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * SQRT_2_OVER_PI;
    x * (inner.tanh() + 1.0) * 0.5
}
