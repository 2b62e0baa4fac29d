//! Tiled int4 dequant matrix product (`shaders/int4_matmul.wgsl`): prefill and vision-tower
//! linear layers, where many activation rows share each weight.

use burn::tensor::Tensor;
use cubecl::prelude::CubeDim;

use super::int4_matvec::Int4Matrix;
use super::source::{MAX_WORKGROUPS_PER_DIM, Wgsl};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Rows of x and of W per workgroup (the shader's TILE: 8×8 invocations, 8×8 outputs each).
const TILE: usize = 64;

/// `x [M, K] · Wᵀ → [M, N]`, any M; multiplying in f16 where the device has `shader-f16`.
pub fn int4_matmul(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    matmul(gpu, x, w, gpu.capabilities().f16)
}

/// [`int4_matmul`] multiplying in f16 or in f32 (f16 only where the device has `shader-f16`).
pub fn int4_matmul_precision(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, f16: bool) -> Result<Tensor<2>> {
    if f16 && !gpu.capabilities().f16 {
        return Err(Error::Gpu(format!("{} has no shader-f16", gpu.adapter_name())));
    }
    matmul(gpu, x, w, f16)
}

/// The relative L2 error the product may have against the CPU reference on the dequantised
/// weights: f32 sums far under 1e-5; in f16, x and the weights each rounded to f16 (2^-11
/// relative, ≈ 3e-4 in L2 each) and 16-product f16 sums.
pub fn tolerance(f16: bool) -> f64 {
    if f16 { 3e-3 } else { 1e-5 }
}

fn matmul(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, f16: bool) -> Result<Tensor<2>> {
    const OP: &str = "int4_matmul";
    let m = x.dims()[0];
    let groups = (w.rows.div_ceil(TILE), m.div_ceil(TILE));
    if m == 0 || groups.0 > MAX_WORKGROUPS_PER_DIM || groups.1 > MAX_WORKGROUPS_PER_DIM {
        return Err(Error::shape(OP, format!("{m}×{} output does not fit one dispatch", w.rows)));
    }
    let source = Wgsl { name: OP, text: include_str!("../../../shaders/int4_matmul.wgsl"), constants: vec![], flags: if f16 { vec!["f16"] } else { vec![] } };
    w.launch(gpu, OP, x, w.rows, source, CubeDim::new_2d(8, 8), groups, &[0, 0], &[])
}

/// [`int4_matmul`] on fresh random inputs against the CPU reference; returns the relative L2 error.
pub async fn check_against_reference(gpu: &Gpu, m: usize, n: usize, k: usize, group: usize, seed: u64) -> Result<f64> {
    check_precision_against_reference(gpu, (m, n, k, group), gpu.capabilities().f16, seed).await
}

/// The same check in f16 or in f32.
pub async fn check_precision_against_reference(gpu: &Gpu, dims: (usize, usize, usize, usize), f16: bool, seed: u64) -> Result<f64> {
    super::check_int4_kernel(gpu, dims, seed, |gpu, x, w| int4_matmul_precision(gpu, x, w, f16)).await
}
