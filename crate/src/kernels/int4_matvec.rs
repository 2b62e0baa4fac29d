//! int4 dequant matrix-vector product (`shaders/int4_matvec.wgsl`): the decode-time linear layer.

use burn::backend::wgpu::SourceKernel;
use burn::tensor::Tensor;
use cubecl::prelude::{CubeCount, CubeDim};
use cubecl::server::{Handle, KernelArguments};

use super::source::Wgsl;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::Int4Weight;

const WORKGROUP: u32 = 64;
/// Activation rows one launch handles: decode uses 1, speculative/batched decode up to 8.
pub const MAX_ROWS: usize = 8;
/// WebGPU's limit on workgroups along one dispatch dimension.
const MAX_GROUPS_X: usize = 65535;

/// An int4 weight resident on the GPU.
pub struct Int4Matrix {
    pub rows: usize,
    pub cols: usize,
    pub group: usize,
    packed: Handle,
    scales: Handle,
}

impl Int4Matrix {
    pub(crate) fn buffers(&self) -> (Handle, Handle) {
        (self.packed.clone(), self.scales.clone())
    }

    pub fn upload(gpu: &Gpu, w: &Int4Weight) -> Self {
        Self {
            rows: w.rows,
            cols: w.cols,
            group: w.group,
            packed: gpu.upload_u32(&w.packed),
            scales: gpu.upload_u32(&w.scales_u32()),
        }
    }
}

/// `x [M, K] · Wᵀ → [M, N]` for `M ≤ MAX_ROWS`.
pub fn int4_matvec(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    const OP: &str = "int4_matvec";
    let [m, k] = x.dims();
    if k != w.cols {
        return Err(Error::shape(OP, format!("x has {k} columns, the weight expects {}", w.cols)));
    }
    if m == 0 || m > MAX_ROWS {
        return Err(Error::shape(OP, format!("x has {m} rows; this kernel takes 1 to {MAX_ROWS}")));
    }
    let n = w.rows;
    let x = gpu.buffer_of(OP, x)?;
    let y = gpu.empty_f32(m * n);

    let groups_x = n.min(MAX_GROUPS_X);
    let groups_y = n.div_ceil(groups_x);
    let words_per_row = Int4Weight::words_per_row(w.cols, w.group);
    let params = [
        m as u32,
        n as u32,
        k as u32,
        words_per_row as u32,
        Int4Weight::groups_per_row(w.cols, w.group) as u32,
        (w.group / crate::quant::NIBBLES_PER_WORD) as u32,
        groups_x as u32,
        0,
    ];
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/int4_matvec.wgsl"),
        constants: vec![("workgroup_size", WORKGROUP), ("max_rows", MAX_ROWS as u32)],
    };
    gpu.client().launch(
        Box::new(SourceKernel::new(source, CubeDim::new_1d(WORKGROUP))),
        CubeCount::Static(groups_x as u32, groups_y as u32, 1),
        KernelArguments::new()
            .with_buffer(x.handle.clone().binding())
            .with_buffer(w.packed.clone().binding())
            .with_buffer(w.scales.clone().binding())
            .with_buffer(y.clone().binding())
            .with_buffer(gpu.upload_u32(&params).binding()),
    );
    Ok(gpu.tensor_of(y, [m, n]))
}

/// [`int4_matvec`] on fresh random inputs against the CPU reference; returns the relative L2 error.
pub async fn check_against_reference(gpu: &Gpu, m: usize, n: usize, k: usize, group: usize, seed: u64) -> Result<f64> {
    super::check_int4_kernel(gpu, (m, n, k, group), seed, int4_matvec).await
}
