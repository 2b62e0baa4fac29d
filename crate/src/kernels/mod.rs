//! Launchers for our WGSL kernels (`shaders/`), each next to its CPU reference and checks.

pub mod argmax;
pub mod attention;
pub mod copy;
pub mod embedding;
pub mod int4_matmul;
pub mod int4_matvec;
pub mod rms_norm;
pub mod rope;
mod source;
pub mod swiglu;

pub use argmax::argmax;
pub use attention::{Mask, attention};
pub use int4_matmul::int4_matmul;
pub use int4_matvec::{
    Int4Matrix, int4_matvec, int4_matvec_add, int4_matvec_normed, int4_matvec_swiglu, int4_matvec_swiglu_normed,
};
pub use rms_norm::rms_norm;
pub use rope::{CacheRows, Projections, rope_into_cache};
pub use swiglu::swiglu;

use burn::tensor::{Tensor, TensorData};

use crate::error::Result;
use crate::gpu::Gpu;
use crate::quant::{Int4Weight, matvec_reference};

/// Run an int4 kernel on fresh random inputs of the given size and return its relative L2 error
/// against the CPU reference on the dequantised weights (see below where the products cancel).
/// Shared by the native tests and the in-browser test, so both check the same thing.
pub(crate) async fn check_int4_kernel(
    gpu: &Gpu,
    dims: (usize, usize, usize, usize),
    seed: u64,
    kernel: impl Fn(&Gpu, Tensor<2>, &Int4Matrix) -> Result<Tensor<2>>,
) -> Result<f64> {
    check_int4_kernel_then(gpu, dims, seed, kernel, |y| y).await
}

/// [`check_int4_kernel`] for a kernel that does more with its products: `then` does the same to
/// the reference's `[M, N]` products.
pub(crate) async fn check_int4_kernel_then(
    gpu: &Gpu,
    dims: (usize, usize, usize, usize),
    seed: u64,
    kernel: impl Fn(&Gpu, Tensor<2>, &Int4Matrix) -> Result<Tensor<2>>,
    then: impl Fn(Vec<f32>) -> Vec<f32>,
) -> Result<f64> {
    check_int4_kernel_with(gpu, dims, seed, kernel, |x| x.to_vec(), then).await
}

/// [`check_int4_kernel_then`] for a kernel that also transforms its input `x [M, K]`: the
/// reference multiplies `input(x)` instead.
pub(crate) async fn check_int4_kernel_with(
    gpu: &Gpu,
    (m, n, k, group): (usize, usize, usize, usize),
    seed: u64,
    kernel: impl Fn(&Gpu, Tensor<2>, &Int4Matrix) -> Result<Tensor<2>>,
    input: impl Fn(&[f32]) -> Vec<f32>,
    then: impl Fn(Vec<f32>) -> Vec<f32>,
) -> Result<f64> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let w = Int4Weight::quantize("random", &rng.normal_vec(n * k, 1.0), n, k, group)?;
    let raw_x = rng.normal_vec(m * k, 1.0);
    let x = input(&raw_x);
    let dequantized = w.dequantize();
    let want = then(matvec_reference(&x, m, &dequantized, n, k));
    // Relative L2 error, but never relative to less than the size these sums have when their
    // products do not cancel, ‖Σ|x·w|‖ / √k (≈ 0.64 ‖want‖ for random inputs, where this is
    // plain rel. L2): one output of 8 products once summed to -0.0013 from Σ|x·w| = 7.4, and its
    // f32 rounding, exact for the kernel, read as 7.7e-5 of that.
    let abs = |v: &[f32]| v.iter().map(|a| a.abs()).collect::<Vec<_>>();
    let uncancelled =
        l2(matvec_reference(&abs(&x), m, &abs(&dequantized), n, k).into_iter().map(f64::from)) / (k as f64).sqrt();
    let xt = Tensor::<2>::from_data(TensorData::new(raw_x, [m, k]), gpu.device());
    let got = crate::gpu::read_f32(kernel(gpu, xt, &Int4Matrix::upload(gpu, &w))?).await?;
    if got.len() != want.len() {
        return Err(crate::Error::shape(
            "int4 kernel check",
            format!("{} outputs, the reference has {}", got.len(), want.len()),
        ));
    }
    let diff = l2(got.iter().zip(&want).map(|(&g, &w)| g as f64 - w as f64));
    let size = l2(want.iter().map(|&w| w as f64)).max(uncancelled);
    Ok(diff / size.max(f64::MIN_POSITIVE))
}

fn l2(values: impl Iterator<Item = f64>) -> f64 {
    values.map(|v| v * v).sum::<f64>().sqrt()
}
