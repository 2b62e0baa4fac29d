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
/// k per step of the shader's loop (its KSTEP).
const KSTEP: usize = 16;

/// [Decision, not yet measured on a GPU] A GEMM with fewer 64×64 blocks than this is split
/// along k until it has about this many workgroups: 512 keeps 4 of them on each of an H100's 132
/// SMs (8 warps), where a 32-row follow-up prompt's 3072-wide projections had 48 workgroups and
/// the vision tower's 1152-wide ones at 729 rows 216. A GPU with fewer cores pays for splits it
/// did not need only the slices' extra traffic, `splits × M × N` floats written and read once.
const TARGET_WORKGROUPS: usize = 512;
/// Fewest steps of k (`KSTEP` each) a split walks: 512 of k, so a split's staging and final
/// stores stay small beside its arithmetic.
const MIN_STEPS_PER_SPLIT: usize = 32;

/// `x [M, K] · Wᵀ → [M, N]`, any M; multiplying in f16 where the device has `shader-f16`, split
/// along k when the product has few blocks ([`splits_for`]).
pub fn int4_matmul(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix) -> Result<Tensor<2>> {
    int4_matmul_precision(gpu, x, w, gpu.capabilities().f16)
}

/// [`int4_matmul`] multiplying in f16 or in f32 (f16 only where the device has `shader-f16`).
pub fn int4_matmul_precision(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, f16: bool) -> Result<Tensor<2>> {
    let splits = splits_for(x.dims()[0], w.rows, w.padded_cols());
    int4_matmul_split(gpu, x, w, f16, splits)
}

/// [`int4_matmul_precision`] with k cut into `splits` ranges (at most one per step of k), each
/// summed by its own workgroups; the partial products are added after.
pub fn int4_matmul_split(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, f16: bool, splits: usize) -> Result<Tensor<2>> {
    if f16 && !gpu.capabilities().f16 {
        return Err(Error::Gpu(format!("{} has no shader-f16", gpu.adapter_name())));
    }
    matmul(gpu, x, w, f16, splits)
}

/// How many ranges of k an `[M, K] · [N, K]ᵀ` product is split into (see `TARGET_WORKGROUPS`);
/// `k` as the weights are stored, padded to whole groups ([`Int4Matrix::padded_cols`]).
pub fn splits_for(m: usize, n: usize, k: usize) -> usize {
    let blocks = n.div_ceil(TILE) * m.div_ceil(TILE);
    let steps = k / KSTEP;
    TARGET_WORKGROUPS.div_ceil(blocks.max(1)).min(steps / MIN_STEPS_PER_SPLIT).max(1)
}

fn matmul(gpu: &Gpu, x: Tensor<2>, w: &Int4Matrix, f16: bool, splits: usize) -> Result<Tensor<2>> {
    const OP: &str = "int4_matmul";
    let (m, n) = (x.dims()[0], w.rows);
    let steps = w.padded_cols() / KSTEP;
    // No more splits than steps, nor than the device can bind as slices: every split then has
    // at least one step (the shader would store zeros for one without).
    let most = (gpu.max_binding_bytes() as usize / (4 * m * n).max(1)).max(1);
    let steps_per_split = steps.div_ceil(splits.clamp(1, steps.max(1)).min(most)).max(1);
    let splits = steps.div_ceil(steps_per_split).max(1);
    let groups = (n.div_ceil(TILE), m.div_ceil(TILE) * splits);
    if m == 0 || groups.0 > MAX_WORKGROUPS_PER_DIM || groups.1 > MAX_WORKGROUPS_PER_DIM {
        return Err(Error::shape(OP, format!("{m}×{n} output in {splits} slices of k does not fit one dispatch")));
    }
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/int4_matmul.wgsl"),
        constants: vec![],
        flags: if f16 { vec!["f16"] } else { vec![] },
    };
    let slices = w.launch(
        gpu,
        OP,
        x,
        n * splits,
        source,
        CubeDim::new_2d(8, 8),
        groups,
        &[splits as u32, steps_per_split as u32],
        &[],
    )?;
    Ok(match splits {
        1 => slices,
        // The kernel wrote `[splits, M, N]` into the buffer of this `[M, splits·N]` tensor.
        _ => slices.reshape([splits, m, n]).sum_dim(0).reshape([m, n]),
    })
}

/// [`int4_matmul`] on fresh random inputs against the CPU reference; returns the relative L2 error.
pub async fn check_against_reference(gpu: &Gpu, m: usize, n: usize, k: usize, group: usize, seed: u64) -> Result<f64> {
    check_precision_against_reference(gpu, (m, n, k, group), gpu.capabilities().f16, seed).await
}

/// The same check in f16 or in f32.
pub async fn check_precision_against_reference(
    gpu: &Gpu,
    dims: (usize, usize, usize, usize),
    f16: bool,
    seed: u64,
) -> Result<f64> {
    super::check_int4_kernel(gpu, dims, seed, |gpu, x, w| int4_matmul_precision(gpu, x, w, f16)).await
}

/// The same check with k cut into `splits` ranges.
pub async fn check_split_against_reference(
    gpu: &Gpu,
    dims: (usize, usize, usize, usize),
    f16: bool,
    splits: usize,
    seed: u64,
) -> Result<f64> {
    super::check_int4_kernel(gpu, dims, seed, |gpu, x, w| int4_matmul_split(gpu, x, w, f16, splits)).await
}
