//! Tiled int4 dequant matrix product (`shaders/int4_matmul.wgsl`): prefill and vision-tower
//! linear layers, where many activation rows share each weight.

use burn::tensor::Tensor;
use cubecl::prelude::CubeDim;

use super::int4_matvec::Int4Matrix;
use super::source::{MAX_WORKGROUPS_PER_DIM, Wgsl};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// Rows of x and of W per workgroup (the shader's TILE: 16×16 invocations, 4×4 outputs each).
const TILE: usize = 64;

/// `x [M, K] · Wᵀ → [M, N]`, any M.
pub fn int4_matmul(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    const OP: &str = "int4_matmul";
    let m = x.dims()[0];
    let groups = (w.rows.div_ceil(TILE), m.div_ceil(TILE));
    if m == 0 || groups.0 > MAX_WORKGROUPS_PER_DIM || groups.1 > MAX_WORKGROUPS_PER_DIM {
        return Err(Error::shape(OP, format!("{m}×{} output does not fit one dispatch", w.rows)));
    }
    let source = Wgsl { name: OP, text: include_str!("../../../shaders/int4_matmul.wgsl"), constants: vec![], flags: vec![] };
    w.launch(gpu, OP, x, source, CubeDim::new_2d(16, 16), groups, [0, 0], &[])
}

/// [`int4_matmul`] on fresh random inputs against the CPU reference; returns the relative L2 error.
pub async fn check_against_reference(gpu: &Gpu, m: usize, n: usize, k: usize, group: usize, seed: u64) -> Result<f64> {
    super::check_int4_kernel(gpu, (m, n, k, group), seed, int4_matmul).await
}
