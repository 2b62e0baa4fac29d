//! SwiGLU in one launch (`shaders/swiglu.wgsl`).

use burn::tensor::{Tensor, TensorData};
use cubecl::prelude::CubeDim;

use super::source::Buffer::{Read, Write};
use super::source::{Wgsl, grid};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;

/// `silu(gate) · up` for `gate_up = [gate | up]` side by side in each row.
///
/// # Shapes
/// `gate_up [rows, 2·inter]` → `[rows, inter]`
pub fn swiglu(gpu: &Gpu, gate_up: Tensor<2>) -> Result<Tensor<2>> {
    const OP: &str = "swiglu";
    let [rows, cols] = gate_up.dims();
    if !cols.is_multiple_of(2) || rows * cols == 0 {
        return Err(Error::shape(OP, format!("gate_up is {rows}×{cols}: expected an even, non-zero width")));
    }
    let inter = cols / 2;
    let gu = gpu.buffer_of(OP, gate_up)?;
    let y = gpu.empty_f32(rows * inter);
    let (groups_x, groups_y) = grid((rows * inter).div_ceil(WORKGROUP as usize));
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/swiglu.wgsl"),
        constants: vec![("workgroup_size", WORKGROUP)],
        flags: vec![],
    };
    source.launch(
        gpu,
        CubeDim::new_1d(WORKGROUP),
        (groups_x, groups_y),
        &[Read(&gu.handle), Write(&y)],
        &[rows as u32, inter as u32, groups_x as u32, 0],
    );
    Ok(gpu.tensor_of(y, [rows, inter]))
}

/// [`swiglu`] on fresh random inputs against an f64 CPU reference; the relative L2 error.
pub async fn check(gpu: &Gpu, rows: usize, inter: usize, seed: u64) -> Result<f64> {
    let gu = crate::rng::SplitMix64::new(seed).normal_vec(rows * 2 * inter, 4.0);
    let want: Vec<f32> = gu
        .chunks(2 * inter)
        .flat_map(|row| {
            (0..inter).map(move |c| {
                let (g, u) = (row[c] as f64, row[inter + c] as f64);
                (g / (1.0 + (-g).exp()) * u) as f32
            })
        })
        .collect();
    let got = swiglu(gpu, Tensor::from_data(TensorData::new(gu, [rows, 2 * inter]), gpu.device()))?;
    Ok(crate::quant::rel_l2(&crate::gpu::read_f32(got).await?, &want))
}
