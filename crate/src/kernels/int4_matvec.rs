//! int4 dequant matrix-vector product (`shaders/int4_matvec.wgsl`): the decode-time linear layer.

use burn::tensor::Tensor;
use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::source::Buffer::{Read, Write};
use super::source::{Buffer, Wgsl, grid, subgroup_flags};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::Int4Weight;

/// How the matvec kernel splits the work; `fusion bench` measures the alternatives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatvecShape {
    /// Invocations per workgroup, sharing each output's row (a power of two).
    pub workgroup: u32,
    /// Output features per workgroup: loads in flight per invocation, and reuse of each x value.
    pub outputs: u32,
    /// Steps along the row whose loads are issued together: `outputs × unroll` loads in flight
    /// per invocation, without more outputs' worth of registers and x traffic per load.
    pub unroll: u32,
    /// x read through workgroup memory in coalesced loads (`stage` in the shader), rather than
    /// each invocation reading its own 128 bytes, a cache line per invocation and load.
    pub stage_x: bool,
}

impl MatvecShape {
    /// One subgroup-sized workgroup (32 on NVIDIA) splits a row of the decoders' widths
    /// (3072–14336 columns: 96–448 loads of 16 bytes) into 3–14 loads each. Measured on an H100
    /// (`fusion bench`, `matvec_shapes`): the best of the candidates below on the 3B's and 8B's
    /// matrices, 16–30 % faster than 64 × 4, the first choice (BENCHMARKS.md).
    /// `unroll` 1: the candidates with more steps in flight came after that measurement.
    ///
    /// [Decision] x staged through workgroup memory, not yet measured on a GPU (BENCHMARKS.md,
    /// "Not yet measured"): read directly, the 8 load instructions per step that fetch x each
    /// touch 32 cache lines (one per invocation, 128 bytes apart) where a coalesced one touches
    /// 4, about 64 line lookups per 1024 weights of a row against 5 for the weights themselves;
    /// on the H100's L1 (about one line per clock) that is 25–30 µs of the 3B lm_head's 63 µs.
    /// Staged: 18 per row. Undo it if `matvec_shapes` says otherwise.
    pub const DEFAULT: Self = Self::staged(32, 4, 1);

    /// The splits `fusion bench` compares (and the kernel test checks).
    pub const CANDIDATES: [Self; 16] = [
        Self::new(16, 4, 1),
        Self::new(16, 8, 1),
        Self::new(32, 2, 1),
        Self::new(32, 4, 1),
        Self::new(32, 8, 1),
        Self::new(64, 4, 1),
        Self::new(128, 4, 1),
        Self::new(256, 4, 1),
        Self::new(32, 4, 2),
        Self::new(32, 4, 4),
        Self::new(32, 2, 4),
        Self::staged(32, 2, 1),
        Self::DEFAULT,
        Self::staged(32, 4, 2),
        Self::staged(32, 4, 4),
        Self::staged(64, 4, 1),
    ];

    const fn new(workgroup: u32, outputs: u32, unroll: u32) -> Self {
        Self { workgroup, outputs, unroll, stage_x: false }
    }

    const fn staged(workgroup: u32, outputs: u32, unroll: u32) -> Self {
        Self { workgroup, outputs, unroll, stage_x: true }
    }

    /// Workgroup memory for `rows` activation rows: the partial sums (and each row's x² with a
    /// norm), and one step's x when staged (WebGPU guarantees 16 KiB).
    fn workgroup_bytes(self, rows: usize, norm: bool) -> usize {
        let partial = self.workgroup as usize * rows * (self.outputs as usize + norm as usize) * 4;
        partial + if self.stage_x { self.workgroup as usize * 8 * 16 } else { 0 }
    }
}

/// Workgroup memory every WebGPU device offers a compute shader.
const WORKGROUP_BYTES: usize = 16 << 10;

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
    /// The matrices one above the other (rows concatenated): LLaMA's q, k and v, or gate and up,
    /// as one matrix, so a decode step launches one matvec instead of three or two. `None` when
    /// they differ in columns or group, or a part's scales do not end on a 16-byte boundary of
    /// the packed scale pairs (never at the real shapes: 1024+ rows × 128 groups), or the stack
    /// would be larger than the device can bind (the browser checks each tensor of a model
    /// against that limit before downloading it, not the stacks made here).
    pub fn stack(gpu: &Gpu, parts: &[&Int4Matrix]) -> Result<Option<Int4Matrix>> {
        Self::stack_within(gpu, parts, gpu.max_binding_bytes())
    }

    /// [`Int4Matrix::stack`] with `max_bytes` for the device's binding limit.
    pub fn stack_within(gpu: &Gpu, parts: &[&Int4Matrix], max_bytes: u64) -> Result<Option<Int4Matrix>> {
        let Some(first) = parts.first() else { return Ok(None) };
        let (cols, group) = (first.cols, first.group);
        let words_per_row = Int4Weight::words_per_row(cols, group);
        let groups_per_row = Int4Weight::groups_per_row(cols, group);
        let aligned =
            |m: &&Int4Matrix| m.cols == cols && m.group == group && (m.rows * groups_per_row).is_multiple_of(8);
        if parts.len() < 2 || !parts.iter().all(aligned) {
            return Ok(None);
        }
        let rows: usize = parts.iter().map(|m| m.rows).sum();
        if (rows * words_per_row * 4) as u64 > max_bytes {
            return Ok(None);
        }
        let packed = gpu.empty_bytes(rows * words_per_row * 4);
        let scales = gpu.empty_bytes(rows * groups_per_row * 2);
        let mut at = 0;
        for m in parts {
            super::copy::copy(gpu, &m.packed, &packed, m.rows * words_per_row, at * words_per_row)?;
            super::copy::copy(gpu, &m.scales, &scales, m.rows * groups_per_row / 2, at * groups_per_row / 2)?;
            at += m.rows;
        }
        Ok(Some(Int4Matrix { rows, cols, group, packed, scales }))
    }

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
    /// into a new `y [M, y_cols]` (N, or fewer when an epilogue combines outputs). Both int4
    /// shaders bind `x, w, scales, y`, then their own `more`
    /// buffers, and read the same `Params` header (m, n, k, words_per_row, groups_per_row,
    /// words_per_group) followed by words of their own, `extra` (filling 16-byte rows).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn launch(
        &self,
        gpu: &Gpu,
        op: &'static str,
        x: Tensor<2>,
        y_cols: usize,
        source: Wgsl,
        cube_dim: CubeDim,
        count: (usize, usize),
        extra: &[u32],
        more: &[Buffer],
    ) -> Result<Tensor<2>> {
        let [m, k] = x.dims();
        if k != self.padded_cols() {
            self.check_input(op, &x)?;
        }
        let n = self.rows;
        let x = gpu.buffer_of(op, x)?;
        let y = gpu.empty_f32(m * y_cols);
        let header = [
            m as u32,
            n as u32,
            k as u32,
            Int4Weight::words_per_row(self.cols, self.group) as u32,
            Int4Weight::groups_per_row(self.cols, self.group) as u32,
            (self.group / crate::quant::NIBBLES_PER_WORD) as u32,
        ];
        let params: Vec<u32> = header.into_iter().chain(extra.iter().copied()).collect();
        let buffers: Vec<Buffer> = [Read(&x.handle), Read(&self.packed), Read(&self.scales), Write(&y)]
            .into_iter()
            .chain(more.iter().copied())
            .collect();
        source.launch(gpu, cube_dim, count, &buffers, &params);
        Ok(gpu.tensor_of(y, [m, y_cols]))
    }
}

/// `x [M, K] · Wᵀ → [M, N]` for `M ≤ MAX_ROWS`, reducing with subgroup operations where the
/// device has them.
pub fn int4_matvec(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    matvec(gpu, x, w, MatvecShape::DEFAULT, gpu.capabilities().subgroups, None, Epilogue::None)
}

/// `x [M, K] · Wᵀ + residual [M, N]` in one launch: a decoder layer's output projections.
pub fn int4_matvec_add(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, residual: Tensor<2>) -> Result<Tensor<2>> {
    matvec(gpu, x, w, MatvecShape::DEFAULT, gpu.capabilities().subgroups, None, Epilogue::Residual(residual))
}

/// `silu(gate) · up → [M, N / 2]` for `[gate | up] = x [M, K] · Wᵀ`, W's first half of rows
/// the gate's, in one launch: a decoder layer's MLP up to its down projection.
pub fn int4_matvec_swiglu(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    matvec(gpu, x, w, MatvecShape::DEFAULT, gpu.capabilities().subgroups, None, Epilogue::Swiglu)
}

/// An RMSNorm of the matvec's input, `x / sqrt(mean(x²) + eps) · weight` per row.
#[derive(Clone, Copy)]
pub struct Norm<'a> {
    /// `[K]`
    pub weight: &'a Tensor<1>,
    pub eps: f64,
}

/// [`int4_matvec`] of `norm(x)`, in one launch where it can be (`rms_norm` in the shader; else
/// the norm is launched first): a decoder layer's qkv, and the lm_head.
pub fn int4_matvec_normed(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, norm: Norm) -> Result<Tensor<2>> {
    matvec(gpu, x, w, MatvecShape::DEFAULT, gpu.capabilities().subgroups, Some(norm), Epilogue::None)
}

/// [`int4_matvec_swiglu`] of `norm(x)`, the same way: a decoder layer's MLP after its norm.
pub fn int4_matvec_swiglu_normed(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, norm: Norm) -> Result<Tensor<2>> {
    matvec(gpu, x, w, MatvecShape::DEFAULT, gpu.capabilities().subgroups, Some(norm), Epilogue::Swiglu)
}

/// What the matvec does with its sums before writing them.
enum Epilogue {
    None,
    /// Adds this `[M, N]` tensor.
    Residual(Tensor<2>),
    /// `silu(gate) · up` of the two halves of each output row.
    Swiglu,
}

/// [`int4_matvec`] with another work split, and with the subgroup or the shared-memory
/// reduction (`subgroups` only where the device has them).
pub fn int4_matvec_variant(
    gpu: &Gpu,
    x: Tensor<2>,
    w: &Int4Matrix,
    shape: MatvecShape,
    subgroups: bool,
) -> Result<Tensor<2>> {
    if subgroups && !gpu.capabilities().subgroups {
        return Err(Error::Gpu(format!("{} has no subgroup operations", gpu.adapter_name())));
    }
    matvec(gpu, x, w, shape, subgroups, None, Epilogue::None)
}

fn matvec(
    gpu: &Gpu,
    x: Tensor<2>,
    w: &Int4Matrix,
    shape: MatvecShape,
    subgroups: bool,
    norm: Option<Norm>,
    epilogue: Epilogue,
) -> Result<Tensor<2>> {
    const OP: &str = "int4_matvec";
    let [m, k] = x.dims();
    if m == 0 || m > MAX_ROWS {
        return Err(Error::shape(OP, format!("x has {m} rows; this kernel takes 1 to {MAX_ROWS}")));
    }
    w.check_input(OP, &x)?;
    match &epilogue {
        Epilogue::Residual(r) if r.dims() != [m, w.rows] => {
            return Err(Error::shape(OP, format!("the residual is {:?}, the output {m}×{}", r.dims(), w.rows)));
        }
        Epilogue::Swiglu if !w.rows.is_multiple_of(2) || !shape.outputs.is_multiple_of(2) => {
            return Err(Error::shape(
                OP,
                format!(
                    "swiglu needs an even number of rows (gate, then up) and of outputs per workgroup: {} rows, {}",
                    w.rows, shape.outputs
                ),
            ));
        }
        _ => {}
    }
    if let Some(norm) = norm
        && norm.weight.dims() != [k]
    {
        return Err(Error::shape(OP, format!("the norm's weight is {:?}, x has {k} columns", norm.weight.dims())));
    }
    // The norm rides on the staging of x, and reads its weight as vec4s.
    let (x, norm) = match norm {
        Some(n) if !shape.stage_x || !k.is_multiple_of(4) => (super::rms_norm(gpu, x, n.weight, n.eps)?, None),
        norm => (x, norm),
    };
    let bytes = shape.workgroup_bytes(m, norm.is_some());
    if bytes > WORKGROUP_BYTES {
        return Err(Error::shape(
            OP,
            format!("{shape:?} for {m} rows needs {bytes} bytes of workgroup memory, over WebGPU's {WORKGROUP_BYTES}"),
        ));
    }
    // The kernel reads x in 16-byte loads up to the packed row length (whole groups): pad with
    // zeros when K is not a whole number of groups (never at the decoders' widths).
    let padded = w.padded_cols();
    let x = if padded == k { x } else { Tensor::cat(vec![x, Tensor::zeros([m, padded - k], gpu.device())], 1) };
    let swiglu = matches!(epilogue, Epilogue::Swiglu);
    let (add, residual) = match epilogue {
        Epilogue::Residual(r) => (1, gpu.buffer_of(OP, r)?.handle),
        _ => (0, gpu.unused_binding().clone()),
    };
    // With swiglu a workgroup owns `outputs / 2` features, each a gate row and an up row.
    let features = if swiglu { w.rows / 2 } else { w.rows };
    let per_workgroup = if swiglu { shape.outputs / 2 } else { shape.outputs };
    let (groups_x, groups_y) = grid(features.div_ceil(per_workgroup as usize));
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/int4_matvec.wgsl"),
        constants: vec![
            ("workgroup_size", shape.workgroup),
            ("rows", m as u32),
            ("outputs", shape.outputs),
            ("unroll", shape.unroll),
            ("swiglu", swiglu as u32),
        ],
        flags: subgroup_flags(subgroups)
            .into_iter()
            .chain(shape.stage_x.then_some("stage_x"))
            .chain(norm.map(|_| "rms_norm"))
            .collect(),
    };
    let eps = norm.map_or(0.0, |n| n.eps as f32);
    let norm_weight = norm.map(|n| gpu.buffer_of(OP, n.weight.clone())).transpose()?;
    let more: Vec<Buffer> =
        std::iter::once(Read(&residual)).chain(norm_weight.as_ref().map(|b| Read(&b.handle))).collect();
    let extra = [groups_x as u32, add, eps.to_bits(), k as u32, 0, 0];
    w.launch(gpu, OP, x, features, source, CubeDim::new_1d(shape.workgroup), (groups_x, groups_y), &extra, &more)
}

/// [`int4_matvec`] on fresh random inputs against the CPU reference; returns the relative L2 error.
pub async fn check_against_reference(gpu: &Gpu, m: usize, n: usize, k: usize, group: usize, seed: u64) -> Result<f64> {
    check_variant_against_reference(gpu, (m, n, k, group), MatvecShape::DEFAULT, gpu.capabilities().subgroups, seed)
        .await
}

/// The same check for another work split and reduction.
pub async fn check_variant_against_reference(
    gpu: &Gpu,
    dims: (usize, usize, usize, usize),
    shape: MatvecShape,
    subgroups: bool,
    seed: u64,
) -> Result<f64> {
    super::check_int4_kernel(gpu, dims, seed, |gpu, x, w| int4_matvec_variant(gpu, x, w, shape, subgroups)).await
}

/// [`int4_matvec_swiglu`] on fresh random inputs against the CPU reference: the products on the
/// dequantised weights, then `silu(gate) · up` in f64.
pub async fn check_swiglu_against_reference(
    gpu: &Gpu,
    (m, n, k, group): (usize, usize, usize, usize),
    seed: u64,
) -> Result<f64> {
    super::check_int4_kernel_then(gpu, (m, n, k, group), seed, int4_matvec_swiglu, |y| swiglu_reference(&y, n)).await
}

/// `silu(gate) · up` in f64 of each `[gate | up]` row of `y`, `n` wide.
fn swiglu_reference(y: &[f32], n: usize) -> Vec<f32> {
    y.chunks(n)
        .flat_map(|row| {
            let (gate, up) = row.split_at(n / 2);
            gate.iter()
                .zip(up)
                .map(|(&g, &u)| (g as f64 / (1.0 + (-g as f64).exp()) * u as f64) as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// [`int4_matvec_normed`], or with `swiglu` [`int4_matvec_swiglu_normed`], on fresh random
/// inputs against the CPU reference: the RMSNorm in f64 (a random weight), then the products
/// on the dequantised weights.
pub async fn check_normed_against_reference(
    gpu: &Gpu,
    (m, n, k, group): (usize, usize, usize, usize),
    swiglu: bool,
    seed: u64,
) -> Result<f64> {
    const EPS: f64 = 1e-5;
    let gamma = crate::rng::SplitMix64::new(seed ^ 0x5eed).normal_vec(k, 1.0);
    let weight = Tensor::<1>::from_data(burn::tensor::TensorData::new(gamma.clone(), [k]), gpu.device());
    let norm = Norm { weight: &weight, eps: EPS };
    // The kernel gets x · 3, so that a norm left out shows.
    let normed = |x: &[f32]| -> Vec<f32> {
        x.chunks(k)
            .flat_map(|row| {
                let rms = (row.iter().map(|&v| 9.0 * v as f64 * v as f64).sum::<f64>() / k as f64 + EPS).sqrt();
                row.iter().zip(&gamma).map(move |(&v, &g)| (3.0 * v as f64 / rms * g as f64) as f32)
            })
            .collect()
    };
    let kernel = |gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix| match swiglu {
        true => int4_matvec_swiglu_normed(gpu, x * 3.0, w, norm),
        false => int4_matvec_normed(gpu, x * 3.0, w, norm),
    };
    let then = |y: Vec<f32>| if swiglu { swiglu_reference(&y, n) } else { y };
    super::check_int4_kernel_with(gpu, (m, n, k, group), seed, kernel, normed, then).await
}
