//! int4 dequant matrix-vector product (`shaders/int4_matvec.wgsl`): the decode-time linear layer.

use burn::tensor::Tensor;
use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::source::{Wgsl, grid};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::Int4Weight;

/// 64 invocations split a row of the decoders' widths (3072–14336 columns: 96–448 loads of 16
/// bytes) into 2–7 loads each.
const WORKGROUP: u32 = 64;
/// Output features per workgroup: loads in flight per invocation, and reuse of each x value.
const OUTPUTS: u32 = 4;
/// Activation rows one launch handles: decode uses 1, speculative/batched decode up to 8.
pub const MAX_ROWS: usize = 8;

/// An int4 weight resident on the GPU.
pub struct Int4Matrix {
    pub rows: usize,
    pub cols: usize,
    pub group: usize,
    packed: Handle,
    scales: Handle,
}

impl Int4Matrix {
    /// Packed words and f16 scale pairs already on the GPU (streamed from a converted model).
    pub fn from_gpu(rows: usize, cols: usize, group: usize, packed: Handle, scales: Handle) -> Self {
        Self { rows, cols, group, packed, scales }
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

impl Int4Matrix {
    /// Columns of a packed row: `cols` rounded up to whole groups.
    pub fn padded_cols(&self) -> usize {
        Int4Weight::words_per_row(self.cols, self.group) * crate::quant::NIBBLES_PER_WORD
    }

    fn check_input(&self, op: &'static str, x: &Tensor<2>) -> Result<()> {
        match x.dims()[1] {
            k if k == self.cols => Ok(()),
            k => Err(Error::shape(op, format!("x has {k} columns, the weight expects {}", self.cols))),
        }
    }

    /// Launch an int4 kernel on `x [M, K]` (K = `cols`, or `padded_cols` with zeros after `cols`)
    /// into a new `y [M, N]`. Both int4 shaders bind `x, w, scales, y, params` in that order and
    /// read the same `Params` header (m, n, k, words_per_row, groups_per_row, words_per_group);
    /// `extra` is the kernel's seventh field.
    pub(crate) fn launch(&self, gpu: &Gpu, op: &'static str, x: Tensor<2>, source: Wgsl, cube_dim: CubeDim, count: (usize, usize), extra: u32) -> Result<Tensor<2>> {
        let [m, k] = x.dims();
        if k != self.padded_cols() {
            self.check_input(op, &x)?;
        }
        let n = self.rows;
        let x = gpu.buffer_of(op, x)?;
        let y = gpu.empty_f32(m * n);
        let params = [
            m as u32,
            n as u32,
            k as u32,
            Int4Weight::words_per_row(self.cols, self.group) as u32,
            Int4Weight::groups_per_row(self.cols, self.group) as u32,
            (self.group / crate::quant::NIBBLES_PER_WORD) as u32,
            extra,
            0,
        ];
        source.launch(gpu, cube_dim, count, &[&x.handle, &self.packed, &self.scales, &y], &params);
        Ok(gpu.tensor_of(y, [m, n]))
    }
}

/// `x [M, K] · Wᵀ → [M, N]` for `M ≤ MAX_ROWS`.
pub fn int4_matvec(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    const OP: &str = "int4_matvec";
    let [m, k] = x.dims();
    if m == 0 || m > MAX_ROWS {
        return Err(Error::shape(OP, format!("x has {m} rows; this kernel takes 1 to {MAX_ROWS}")));
    }
    w.check_input(OP, &x)?;
    // The kernel reads x in 16-byte loads up to the packed row length (whole groups): pad with
    // zeros when K is not a whole number of groups (never at the decoders' widths).
    let padded = w.padded_cols();
    let x = if padded == k { x } else { Tensor::cat(vec![x, Tensor::zeros([m, padded - k], gpu.device())], 1) };
    let (groups_x, groups_y) = grid(w.rows.div_ceil(OUTPUTS as usize));
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/int4_matvec.wgsl"),
        constants: vec![("workgroup_size", WORKGROUP), ("rows", m as u32), ("outputs", OUTPUTS)],
    };
    w.launch(gpu, OP, x, source, CubeDim::new_1d(WORKGROUP), (groups_x, groups_y), groups_x as u32)
}

/// [`int4_matvec`] on fresh random inputs against the CPU reference; returns the relative L2 error.
pub async fn check_against_reference(gpu: &Gpu, m: usize, n: usize, k: usize, group: usize, seed: u64) -> Result<f64> {
    super::check_int4_kernel(gpu, (m, n, k, group), seed, int4_matvec).await
}
