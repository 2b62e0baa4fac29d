//! The one linear layer: f32 weights through burn's matmul, or int4 weights through our WGSL
//! kernel. The model is written once; the weight format is a loading choice.

use burn::tensor::Tensor;

use super::attention::Kernels;
use super::norm::RmsNorm;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::int4_matvec::{MAX_ROWS, int4_matvec_normed, int4_matvec_swiglu_normed};
use crate::kernels::{Int4Matrix, int4_matmul, int4_matvec, int4_matvec_add, swiglu};

pub enum LinearWeight {
    /// `[in, out]`: stored transposed from PyTorch's `[out, in]` so the forward is one matmul.
    F32(Tensor<2>),
    /// `[out, in]` in the int4 group format (`quant.rs`).
    Int4(Int4Matrix),
}

pub struct Linear {
    pub weight: LinearWeight,
    /// `[out]`
    pub bias: Option<Tensor<1>>,
    pub in_features: usize,
    pub out_features: usize,
}

impl Linear {
    /// # Shapes
    /// `x [..., in] → [..., out]`
    pub fn forward<const D: usize>(&self, gpu: &Gpu, x: Tensor<D>) -> Result<Tensor<D>> {
        let dims = x.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let x2 = x.reshape([rows, self.in_features]);
        let y = match &self.weight {
            LinearWeight::F32(wt) => x2.matmul(wt.clone()),
            // Decode-sized inputs stream the weights once (matvec); longer ones share each
            // dequantised weight tile across many rows (tiled GEMM).
            LinearWeight::Int4(w) if rows <= MAX_ROWS => int4_matvec(gpu, x2, w)?,
            LinearWeight::Int4(w) => int4_matmul(gpu, x2, w)?,
        };
        let y = match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        };
        let mut out = dims;
        out[D - 1] = self.out_features;
        Ok(y.reshape(out))
    }

    /// The layers' outputs side by side in one layer (their weights and biases stacked), or
    /// `None` when they cannot be (some with a bias and some without, different inputs or
    /// formats, unaligned int4 parts).
    pub fn stack(gpu: &Gpu, parts: &[&Linear]) -> Result<Option<Linear>> {
        let Some(first) = parts.first() else { return Ok(None) };
        if parts.len() < 2
            || parts.iter().any(|l| l.bias.is_some() != first.bias.is_some() || l.in_features != first.in_features)
        {
            return Ok(None);
        }
        let bias = first.bias.is_some().then(|| Tensor::cat(parts.iter().filter_map(|l| l.bias.clone()).collect(), 0));
        let f32s: Option<Vec<Tensor<2>>> =
            parts.iter().map(|l| if let LinearWeight::F32(w) = &l.weight { Some(w.clone()) } else { None }).collect();
        let int4s: Option<Vec<&Int4Matrix>> =
            parts.iter().map(|l| if let LinearWeight::Int4(w) = &l.weight { Some(w) } else { None }).collect();
        let weight = match (f32s, int4s) {
            // `[in, out]` each: side by side along `out`.
            (Some(ws), _) => LinearWeight::F32(Tensor::cat(ws, 1)),
            (_, Some(ws)) => match Int4Matrix::stack(gpu, &ws)? {
                Some(w) => LinearWeight::Int4(w),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(Linear {
            weight,
            bias,
            in_features: first.in_features,
            out_features: parts.iter().map(|l| l.out_features).sum(),
        }))
    }

    /// `residual + forward(x)`; one launch for a decode step's int4 projection.
    ///
    /// # Shapes
    /// `x [rows, in]`, `residual [rows, out]` → `[rows, out]`
    pub fn forward_add(&self, gpu: &Gpu, x: Tensor<2>, residual: Tensor<2>) -> Result<Tensor<2>> {
        match &self.weight {
            LinearWeight::Int4(w) if self.bias.is_none() && x.dims()[0] <= MAX_ROWS => {
                int4_matvec_add(gpu, x, w, residual)
            }
            _ => Ok(residual + self.forward(gpu, x)?),
        }
    }

    /// `forward(norm(x))`: one launch for a decode step's int4 projection, else our RMSNorm
    /// kernel and the projection.
    ///
    /// # Shapes
    /// `x [rows, in]` → `[rows, out]`
    pub fn forward_normed(&self, gpu: &Gpu, norm: &RmsNorm, x: Tensor<2>) -> Result<Tensor<2>> {
        match &self.weight {
            LinearWeight::Int4(w) if self.bias.is_none() && x.dims()[0] <= MAX_ROWS => {
                int4_matvec_normed(gpu, x, w, norm.as_kernel_input())
            }
            _ => self.forward(gpu, norm.forward(gpu, Kernels::Fused, x)?),
        }
    }

    /// `silu(gate) · up` of `forward(norm(x))` for a layer whose outputs are `[gate | up]`: one
    /// launch for a decode step's int4 projection, else our RMSNorm kernel, the projection and
    /// our SwiGLU kernel.
    ///
    /// # Shapes
    /// `x [rows, in]` → `[rows, out / 2]`
    pub fn forward_swiglu_normed(&self, gpu: &Gpu, norm: &RmsNorm, x: Tensor<2>) -> Result<Tensor<2>> {
        match &self.weight {
            LinearWeight::Int4(w) if self.bias.is_none() && x.dims()[0] <= MAX_ROWS => {
                int4_matvec_swiglu_normed(gpu, x, w, norm.as_kernel_input())
            }
            _ => swiglu(gpu, self.forward(gpu, norm.forward(gpu, Kernels::Fused, x)?)?),
        }
    }
}
