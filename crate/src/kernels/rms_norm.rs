//! RMSNorm in one launch (`shaders/rms_norm.wgsl`).

use burn::tensor::{Tensor, TensorData};
use cubecl::prelude::CubeDim;

use super::source::Buffer::{Read, Write};
use super::source::{Wgsl, grid};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;

/// `x / sqrt(mean(x²) + eps) · weight` per row.
///
/// # Shapes
/// `x [rows, cols]`, `weight [cols]` → `[rows, cols]`
pub fn rms_norm(gpu: &Gpu, x: Tensor<2>, weight: &Tensor<1>, eps: f64) -> Result<Tensor<2>> {
    const OP: &str = "rms_norm";
    let [rows, cols] = x.dims();
    if weight.dims()[0] != cols || rows == 0 {
        return Err(Error::shape(OP, format!("x is {rows}×{cols}, the weight has {}", weight.dims()[0])));
    }
    let (x, w) = (gpu.buffer_of(OP, x)?, gpu.buffer_of(OP, weight.clone())?);
    let y = gpu.empty_f32(rows * cols);
    let (groups_x, groups_y) = grid(rows);
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/rms_norm.wgsl"),
        constants: vec![("workgroup_size", WORKGROUP)],
        flags: vec![],
    };
    let params = [rows as u32, cols as u32, groups_x as u32, (eps as f32).to_bits()];
    source.launch(
        gpu,
        CubeDim::new_1d(WORKGROUP),
        (groups_x, groups_y),
        &[Read(&x.handle), Read(&w.handle), Write(&y)],
        &params,
    );
    Ok(gpu.tensor_of(y, [rows, cols]))
}

/// [`rms_norm`] on fresh random inputs against an f64 CPU reference; the relative L2 error.
pub async fn check(gpu: &Gpu, rows: usize, cols: usize, seed: u64) -> Result<f64> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let (x, w) = (rng.normal_vec(rows * cols, 3.0), rng.normal_vec(cols, 1.0));
    let eps = 1e-5;
    let want: Vec<f32> = x
        .chunks(cols)
        .flat_map(|row| {
            let rms = (row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / cols as f64 + eps).sqrt();
            row.iter().zip(&w).map(move |(&v, &g)| (v as f64 / rms * g as f64) as f32)
        })
        .collect();
    let dev = gpu.device();
    let got = rms_norm(
        gpu,
        Tensor::from_data(TensorData::new(x, [rows, cols]), dev),
        &Tensor::from_data(TensorData::new(w, [cols]), dev),
        eps,
    )?;
    Ok(crate::quant::rel_l2(&crate::gpu::read_f32(got).await?, &want))
}
