//! Rotary position embedding into attention's head-major layout, in one launch (`shaders/rope.wgsl`).

use burn::tensor::{Tensor, TensorData};
use cubecl::prelude::CubeDim;

use super::source::{Wgsl, grid};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;

/// Heads `0..heads` of width `head_dim` starting at column `offset` of each row of `x`, rotated
/// by the position tables (`model::rope::Rope::tables`), as `[heads, S, head_dim]`.
///
/// # Shapes
/// `x [S, cols ≥ offset + heads·head_dim]`, `cos`/`sin [S, head_dim]` → `[heads, S, head_dim]`
pub fn rope(gpu: &Gpu, x: Tensor<2>, offset: usize, heads: usize, head_dim: usize, cos: &Tensor<2>, sin: &Tensor<2>) -> Result<Tensor<3>> {
    const OP: &str = "rope";
    let [s, cols] = x.dims();
    if !head_dim.is_multiple_of(2) || offset + heads * head_dim > cols || cos.dims() != [s, head_dim] || sin.dims() != [s, head_dim] {
        return Err(Error::shape(OP, format!("{heads} heads of {head_dim} at column {offset} of {s}×{cols}, tables {:?}", cos.dims())));
    }
    let total = heads * s * head_dim;
    let (x, cos, sin) = (gpu.buffer_of(OP, x)?, gpu.buffer_of(OP, cos.clone())?, gpu.buffer_of(OP, sin.clone())?);
    let out = gpu.empty_f32(total);
    let (groups_x, groups_y) = grid(total.div_ceil(WORKGROUP as usize));
    let source = Wgsl { name: OP, text: include_str!("../../../shaders/rope.wgsl"), constants: vec![("workgroup_size", WORKGROUP)], flags: vec![] };
    let params = [s, heads, head_dim, cols, offset, total, groups_x, 0].map(|v| v as u32);
    source.launch(gpu, CubeDim::new_1d(WORKGROUP), (groups_x, groups_y), &[&x.handle, &cos.handle, &sin.handle, &out], &params);
    Ok(gpu.tensor_of(out, [heads, s, head_dim]))
}

/// [`rope`] on fresh random inputs against the CPU formula; the relative L2 error.
pub async fn check(gpu: &Gpu, (s, heads, head_dim, offset, cols): (usize, usize, usize, usize, usize), seed: u64) -> Result<f64> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let x = rng.normal_vec(s * cols, 1.0);
    let angles: Vec<f64> = (0..s * head_dim).map(|_| rng.next_f32() as f64 * 6.3).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos() as f32).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin() as f32).collect();
    let half = head_dim / 2;
    let mut want = Vec::with_capacity(heads * s * head_dim);
    for h in 0..heads {
        for r in 0..s {
            let at = |d: usize| x[r * cols + offset + h * head_dim + d] as f64;
            for d in 0..head_dim {
                let rotated = if d < half { -at(d + half) } else { at(d - half) };
                want.push((at(d) * cos[r * head_dim + d] as f64 + rotated * sin[r * head_dim + d] as f64) as f32);
            }
        }
    }
    let dev = gpu.device();
    let table = |t: Vec<f32>| Tensor::<2>::from_data(TensorData::new(t, [s, head_dim]), dev);
    let got = rope(gpu, Tensor::from_data(TensorData::new(x, [s, cols]), dev), offset, heads, head_dim, &table(cos), &table(sin))?;
    Ok(crate::quant::rel_l2(&crate::gpu::read_f32(got).await?, &want))
}
