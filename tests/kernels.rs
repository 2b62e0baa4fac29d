//! Our WGSL kernels against their CPU references, natively (lavapipe in CI).
//!
//! Inputs are fresh random numbers each run (the seed is printed on failure) with odd sizes,
//! sizes that are not multiples of the workgroup, and more rows than one dispatch dimension holds.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::gpu;
use fusion::kernels::int4_matvec::check_against_reference;

fn fresh_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}

/// f32 accumulation of K products against an f64 reference.
const INT4_MATVEC_TOL: f64 = 1e-5;

#[test]
fn int4_matvec_matches_cpu_reference() {
    for (m, n, k, group) in [(1, 1, 8, 8), (1, 37, 40, 32), (3, 129, 333, 32), (8, 257, 1000, 128), (5, 70_001, 24, 32)] {
        let seed = fresh_seed();
        let err = pollster::block_on(check_against_reference(gpu(), m, n, k, group, seed)).unwrap();
        assert!(err < INT4_MATVEC_TOL, "m={m} n={n} k={k} group={group} seed={seed}: rel L2 {err:e}");
    }
}

#[test]
fn int4_matvec_rejects_mismatched_shapes() {
    use burn::tensor::{Tensor, TensorData};
    use fusion::kernels::{Int4Matrix, int4_matvec};
    use fusion::quant::Int4Weight;
    let w = Int4Matrix::upload(gpu(), &Int4Weight::quantize("w", &[0.5; 64], 2, 32, 32).unwrap());
    let x = |m: usize, k: usize| Tensor::<2>::from_data(TensorData::new(vec![1f32; m * k], [m, k]), gpu().device());
    let e = int4_matvec(gpu(), x(1, 31), &w).err().unwrap();
    assert!(e.to_string().contains("31 columns"), "{e}");
    let e = int4_matvec(gpu(), x(9, 32), &w).err().unwrap();
    assert!(e.to_string().contains("9 rows"), "{e}");
}

#[test]
fn int4_matmul_matches_cpu_reference() {
    use fusion::kernels::int4_matmul::check_against_reference;
    for (m, n, k, group) in [(9, 17, 40, 8), (33, 129, 333, 32), (100, 70, 1000, 128), (729, 24, 72, 32)] {
        let seed = fresh_seed();
        let err = pollster::block_on(check_against_reference(gpu(), m, n, k, group, seed)).unwrap();
        assert!(err < INT4_MATVEC_TOL, "m={m} n={n} k={k} group={group} seed={seed}: rel L2 {err:e}");
    }
}
