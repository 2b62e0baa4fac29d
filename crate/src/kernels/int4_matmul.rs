//! Tiled int4 dequant matrix product (`shaders/int4_matmul.wgsl`): prefill and vision-tower
//! linear layers, where many activation rows share each weight.

use burn::backend::wgpu::SourceKernel;
use burn::tensor::Tensor;
use cubecl::prelude::{CubeCount, CubeDim};
use cubecl::server::KernelArguments;

use super::int4_matvec::Int4Matrix;
use super::source::Wgsl;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::Int4Weight;

const TILE: u32 = 16;
const KSTEP: u32 = 32;

/// `x [M, K] · Wᵀ → [M, N]`, any M.
pub fn int4_matmul(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    const OP: &str = "int4_matmul";
    let [m, k] = x.dims();
    if k != w.cols {
        return Err(Error::shape(OP, format!("x has {k} columns, the weight expects {}", w.cols)));
    }
    let n = w.rows;
    let groups = (n.div_ceil(TILE as usize), m.div_ceil(TILE as usize));
    if m == 0 || groups.0 > 65535 || groups.1 > 65535 {
        return Err(Error::shape(OP, format!("{m}×{n} output does not fit one dispatch")));
    }
    let x = gpu.buffer_of(OP, x)?;
    let y = gpu.empty_f32(m * n);
    let params = [
        m as u32,
        n as u32,
        k as u32,
        Int4Weight::words_per_row(w.cols, w.group) as u32,
        Int4Weight::groups_per_row(w.cols, w.group) as u32,
        (w.group / crate::quant::NIBBLES_PER_WORD) as u32,
        0,
        0,
    ];
    let source = Wgsl { name: OP, text: include_str!("../../../shaders/int4_matmul.wgsl"), constants: vec![("tile", TILE), ("kstep", KSTEP)] };
    let (packed, scales) = w.buffers();
    gpu.client().launch(
        Box::new(SourceKernel::new(source, CubeDim::new_2d(TILE, TILE))),
        CubeCount::Static(groups.0 as u32, groups.1 as u32, 1),
        KernelArguments::new()
            .with_buffer(x.handle.clone().binding())
            .with_buffer(packed.binding())
            .with_buffer(scales.binding())
            .with_buffer(y.clone().binding())
            .with_buffer(gpu.upload_u32(&params).binding()),
    );
    Ok(gpu.tensor_of(y, [m, n]))
}

/// [`int4_matmul`] on fresh random inputs against the CPU reference; returns the relative L2 error.
pub async fn check_against_reference(gpu: &Gpu, m: usize, n: usize, k: usize, group: usize, seed: u64) -> Result<f64> {
    super::check_int4_kernel(gpu, (m, n, k, group), seed, int4_matmul).await
}
