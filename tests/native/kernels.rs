//! Our WGSL kernels against their CPU references, natively (lavapipe in CI).
//!
//! Inputs are fresh random numbers each run (the seed is printed on failure) with odd sizes,
//! sizes that are not multiples of the workgroup, and more rows than one dispatch dimension holds.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::gpu;

fn fresh_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}

/// f32 accumulation of K products against an f64 reference.
const INT4_MATVEC_TOL: f64 = 1e-5;

/// The int4 GEMM's bound: f32 sums as the matvec's; in f16, x and the weights each rounded to
/// f16 (2^-11 relative, ≈ 3e-4 in L2 each) and 16-product f16 sums.
fn int4_matmul_tolerance(f16: bool) -> f64 {
    if f16 { 3e-3 } else { INT4_MATVEC_TOL }
}

/// The matvec's reductions this device runs: shared memory, and subgroups where it has them
/// (lavapipe does, so CI checks both).
fn reductions() -> Vec<bool> {
    if gpu().capabilities().subgroups { vec![false, true] } else { vec![false] }
}

#[test]
fn int4_matvec_matches_cpu_reference() {
    use fusion::kernels::int4_matvec::{MatvecShape, check_variant_against_reference};
    for subgroups in reductions() {
        for (m, n, k, group) in [
            (1, 1, 8, 32),
            (1, 37, 40, 32),
            (3, 129, 333, 64),
            (8, 257, 1000, 128),
            (5, 70_001, 24, 32),
            (1, 3072, 3072, 32),
            (2, 1000, 14336, 32),
        ] {
            let seed = fresh_seed();
            let err = pollster::block_on(check_variant_against_reference(
                gpu(),
                (m, n, k, group),
                MatvecShape::DEFAULT,
                subgroups,
                seed,
            ))
            .unwrap();
            assert!(
                err < INT4_MATVEC_TOL,
                "subgroups={subgroups} m={m} n={n} k={k} group={group} seed={seed}: rel L2 {err:e}"
            );
        }
    }
}

#[test]
fn every_int4_matvec_work_split_matches_cpu_reference() {
    use fusion::kernels::int4_matvec::{MatvecShape, check_variant_against_reference};
    for subgroups in reductions() {
        for shape in MatvecShape::CANDIDATES {
            // 94 loads of 16 bytes per row at k = 3000: a part-used last step for every split.
            for (m, n, k, group) in [(1, 37, 1000, 32), (3, 130, 4096, 64), (2, 45, 3000, 32)] {
                let seed = fresh_seed();
                let err = pollster::block_on(check_variant_against_reference(
                    gpu(),
                    (m, n, k, group),
                    shape,
                    subgroups,
                    seed,
                ))
                .unwrap();
                assert!(
                    err < INT4_MATVEC_TOL,
                    "subgroups={subgroups} {shape:?} m={m} n={n} k={k} group={group} seed={seed}: rel L2 {err:e}"
                );
            }
        }
    }
}

/// Staging x through workgroup memory changes where x is read from, not a single product or
/// sum: the same floats, bit for bit, as each invocation reading its own x.
#[test]
fn int4_matvec_with_x_staged_is_bit_identical() {
    use burn::tensor::{Tensor, TensorData};
    use fusion::kernels::Int4Matrix;
    use fusion::kernels::int4_matvec::{MatvecShape, int4_matvec_variant};
    use fusion::quant::Int4Weight;
    let seed = fresh_seed();
    let mut rng = fusion::rng::SplitMix64::new(seed);
    // Rows of 1, 3 and 14 steps of a 32-wide workgroup (the last one part-used), up to 8 rows.
    for (m, n, k) in [(1, 37, 1000), (8, 66, 3000), (3, 129, 14336)] {
        let w = Int4Matrix::upload(gpu(), &Int4Weight::quantize("w", &rng.normal_vec(n * k, 1.0), n, k, 32).unwrap());
        let x = Tensor::<2>::from_data(TensorData::new(rng.normal_vec(m * k, 1.0), [m, k]), gpu().device());
        for subgroups in reductions() {
            for (workgroup, outputs, unroll) in [(32, 4, 1), (32, 4, 2), (64, 4, 1)] {
                let y = |stage_x| {
                    let shape = MatvecShape { workgroup, outputs, unroll, stage_x };
                    pollster::block_on(fusion::gpu::read_f32(
                        int4_matvec_variant(gpu(), x.clone(), &w, shape, subgroups).unwrap(),
                    ))
                    .unwrap()
                };
                assert_eq!(
                    y(true),
                    y(false),
                    "seed={seed} m={m} n={n} k={k} {workgroup}×{outputs}×{unroll} subgroups={subgroups}"
                );
            }
        }
    }
}

#[test]
fn int4_matvec_adds_the_residual() {
    use burn::tensor::{Tensor, TensorData};
    use fusion::kernels::{Int4Matrix, int4_matvec, int4_matvec_add};
    use fusion::quant::Int4Weight;
    let seed = fresh_seed();
    let mut rng = fusion::rng::SplitMix64::new(seed);
    let (m, n, k) = (2, 77, 96);
    let w = Int4Matrix::upload(gpu(), &Int4Weight::quantize("w", &rng.normal_vec(n * k, 1.0), n, k, 32).unwrap());
    let t = |data: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(data, shape), gpu().device());
    let (x, r) = (rng.normal_vec(m * k, 1.0), rng.normal_vec(m * n, 1.0));
    let plain =
        pollster::block_on(fusion::gpu::read_f32(int4_matvec(gpu(), t(x.clone(), [m, k]), &w).unwrap())).unwrap();
    let added = pollster::block_on(fusion::gpu::read_f32(
        int4_matvec_add(gpu(), t(x.clone(), [m, k]), &w, t(r.clone(), [m, n])).unwrap(),
    ))
    .unwrap();
    let want: Vec<f32> = plain.iter().zip(&r).map(|(a, b)| a + b).collect();
    assert_eq!(added, want, "seed={seed}");
    let e = int4_matvec_add(gpu(), t(x, [m, k]), &w, t(r, [n, m])).err().unwrap();
    assert!(e.to_string().contains("residual"), "{e}");
}

#[test]
fn int4_matvec_swiglu_matches_cpu_reference() {
    use fusion::kernels::int4_matvec::check_swiglu_against_reference;
    // (rows, gate + up rows, columns, group): Phi-3.5's and LLaMA-3.1's gate_up, odd sizes
    // (an odd number of features leaves the last workgroup half used).
    // The device's default reduction, and the browser's (workgroup memory) through `baseline`.
    for device in [gpu().clone(), gpu().clone().baseline()] {
        for (m, n, k, group) in [
            (1, 16384, 3072, 32),
            (1, 2 * 14336, 4096, 32),
            (3, 2 * 37, 96, 32),
            (8, 2, 40, 64),
            (2, 2 * 129, 1000, 128),
        ] {
            let seed = fresh_seed();
            let err = pollster::block_on(check_swiglu_against_reference(&device, (m, n, k, group), seed)).unwrap();
            assert!(
                err < INT4_MATVEC_TOL,
                "{:?} m={m} n={n} k={k} group={group} seed={seed}: rel L2 {err:e}",
                device.capabilities()
            );
        }
    }
    use burn::tensor::Tensor;
    use fusion::kernels::{Int4Matrix, int4_matvec_swiglu};
    let w = Int4Matrix::upload(gpu(), &fusion::quant::Int4Weight::quantize("w", &[0.5; 96], 3, 32, 32).unwrap());
    let e = int4_matvec_swiglu(gpu(), Tensor::<2>::zeros([1, 32], gpu().device()), &w).err().unwrap();
    assert!(e.to_string().contains("even number of rows"), "{e}");
}

#[test]
fn int4_matvec_with_its_input_normed_matches_cpu_reference() {
    use fusion::kernels::int4_matvec::check_normed_against_reference;
    // (rows, output rows, columns, group): Phi-3.5's qkv and LLaMA-3.1's gate_up, odd sizes,
    // rows that are not whole groups (x padded with zeros), and k = 1001, not whole vec4s (the
    // norm is launched first).
    for device in [gpu().clone(), gpu().clone().baseline()] {
        for swiglu in [false, true] {
            for (m, n, k, group) in [
                (1, 9216, 3072, 32),
                (1, 2 * 14336, 4096, 32),
                (3, 2 * 37, 96, 32),
                (8, 2 * 33, 4064, 32),
                (2, 2 * 129, 1000, 128),
                (1, 2 * 5, 1001, 32),
            ] {
                let seed = fresh_seed();
                let err = pollster::block_on(check_normed_against_reference(&device, (m, n, k, group), swiglu, seed))
                    .unwrap();
                assert!(
                    err < INT4_MATVEC_TOL,
                    "{:?} swiglu={swiglu} m={m} n={n} k={k} group={group} seed={seed}: rel L2 {err:e}",
                    device.capabilities()
                );
            }
        }
    }
}

#[test]
fn stacked_int4_matrices_equal_their_parts() {
    use burn::tensor::{Tensor, TensorData};
    use fusion::kernels::{Int4Matrix, int4_matvec};
    use fusion::quant::Int4Weight;
    let seed = fresh_seed();
    let mut rng = fusion::rng::SplitMix64::new(seed);
    let k = 256; // 8 groups per row: every part of 8 rows or more ends on a whole 16-byte scale block
    let x = Tensor::<2>::from_data(TensorData::new(rng.normal_vec(k, 1.0), [1, k]), gpu().device());
    let mut part = |rows: usize, k: usize| {
        Int4Matrix::upload(gpu(), &Int4Weight::quantize("w", &rng.normal_vec(rows * k, 1.0), rows, k, 32).unwrap())
    };
    let (q, kk, v) = (part(24, k), part(8, k), part(8, k));
    let read =
        |w: &Int4Matrix| pollster::block_on(fusion::gpu::read_f32(int4_matvec(gpu(), x.clone(), w).unwrap())).unwrap();
    let stacked = Int4Matrix::stack(gpu(), &[&q, &kk, &v]).unwrap().expect("aligned parts stack");
    assert_eq!(stacked.rows, 40);
    assert_eq!(read(&stacked), [read(&q), read(&kk), read(&v)].concat(), "seed={seed}");
    // 3 rows × 2 groups of scales end mid-block: not stacked (the caller keeps the parts).
    let (short, other) = (part(3, 64), part(8, 64));
    assert!(Int4Matrix::stack(gpu(), &[&short, &other]).unwrap().is_none());
    // Nor is a stack larger than the device binds (40 rows × 128 bytes here).
    assert!(Int4Matrix::stack_within(gpu(), &[&q, &kk, &v], 40 * 128 - 1).unwrap().is_none());
    assert!(Int4Matrix::stack_within(gpu(), &[&q, &kk, &v], 40 * 128).unwrap().is_some());
}

#[test]
fn int4_matvec_rejects_mismatched_shapes() {
    use burn::tensor::{Tensor, TensorData};
    use fusion::kernels::int4_matvec::{MatvecShape, int4_matvec_variant};
    use fusion::kernels::{Int4Matrix, int4_matvec};
    use fusion::quant::Int4Weight;
    let w = Int4Matrix::upload(gpu(), &Int4Weight::quantize("w", &[0.5; 64], 2, 32, 32).unwrap());
    let x = |m: usize, k: usize| Tensor::<2>::from_data(TensorData::new(vec![1f32; m * k], [m, k]), gpu().device());
    let e = int4_matvec(gpu(), x(1, 31), &w).err().unwrap();
    assert!(e.to_string().contains("31 columns"), "{e}");
    let e = int4_matvec(gpu(), x(9, 32), &w).err().unwrap();
    assert!(e.to_string().contains("9 rows"), "{e}");
    // 32 KiB of staged x alone: over what every WebGPU device offers a workgroup.
    let wide = MatvecShape { workgroup: 256, outputs: 4, unroll: 1, stage_x: true };
    let e = int4_matvec_variant(gpu(), x(1, 32), &w, wide, false).err().unwrap();
    assert!(e.to_string().contains("workgroup memory"), "{e}");
}

#[test]
fn int4_matmul_matches_cpu_reference() {
    use fusion::kernels::int4_matmul::check_precision_against_reference;
    // f32, and f16 where the device has shader-f16 (lavapipe does, so CI checks both).
    let precisions = if gpu().capabilities().f16 { vec![false, true] } else { vec![false] };
    for f16 in precisions {
        for (m, n, k, group) in [
            (9, 17, 40, 32),
            (33, 129, 333, 32),
            (100, 70, 1000, 128),
            (729, 24, 72, 32),
            (67, 259, 4304, 32),
            (70, 65, 14336, 32),
        ] {
            let seed = fresh_seed();
            let err =
                pollster::block_on(check_precision_against_reference(gpu(), (m, n, k, group), f16, seed)).unwrap();
            assert!(
                err < int4_matmul_tolerance(f16),
                "f16={f16} m={m} n={n} k={k} group={group} seed={seed}: rel L2 {err:e}"
            );
        }
    }
}

#[test]
fn int4_matmul_split_along_k_matches_cpu_reference() {
    use fusion::kernels::int4_matmul::{check_split_against_reference, splits_for};
    let precisions = if gpu().capabilities().f16 { vec![false, true] } else { vec![false] };
    for f16 in precisions {
        // (m, n, k, group, splits): k in steps of 16 that the splits do not divide, a split of
        // a single step, more splits asked for than there are steps (9 steps of k = 144), odd
        // sizes off every tile, and the real shapes the automatic split is for.
        for (m, n, k, group, splits) in [
            (9, 17, 1000, 32, 3),
            (33, 70, 333, 32, 7),
            (5, 129, 144, 32, 9),
            (70, 65, 144, 32, 40),
            (32, 96, 3072, 32, 6),
            (29, 40, 4304, 32, 3),
        ] {
            let seed = fresh_seed();
            let err =
                pollster::block_on(check_split_against_reference(gpu(), (m, n, k, group), f16, splits, seed)).unwrap();
            assert!(
                err < int4_matmul_tolerance(f16),
                "f16={f16} m={m} n={n} k={k} splits={splits} seed={seed}: rel L2 {err:e}"
            );
        }
    }
    // The automatic choice, as designed (int4_matmul.rs): about 512 workgroups of 64×64 output
    // blocks, no fewer unless k runs out, no more than it takes to get there, and no split
    // walking less than 512 of k. Real shapes (a short prompt's, the so400m tower's fc2 with its
    // 4304 columns stored as 135 groups of 32, a long prefill's) and random ones.
    let mut rng = fusion::rng::SplitMix64::new(fresh_seed());
    let random = (0..500).map(|_| {
        (
            1 + rng.next_u64() as usize % 2000,
            1 + rng.next_u64() as usize % 12000,
            32 * (1 + rng.next_u64() as usize % 450),
        )
    });
    for (m, n, k) in
        [(32, 3072, 3072), (729, 1152, 4320), (895, 9216, 3072), (4, 64, 512), (1, 1, 32)].into_iter().chain(random)
    {
        let (splits, blocks, steps) = (splits_for(m, n, k), m.div_ceil(64) * n.div_ceil(64), k / 16);
        assert!(splits >= 1, "({m}, {n}, {k})");
        assert!(splits == 1 || steps / splits >= 32, "({m}, {n}, {k}): {splits} splits of {steps} steps of 16");
        assert!(
            blocks * splits >= 512 || steps / (splits + 1) < 32,
            "({m}, {n}, {k}): {splits} splits of {blocks} blocks, k allows more"
        );
        assert!(blocks * (splits - 1) < 512, "({m}, {n}, {k}): {splits} splits where fewer reach 512 workgroups");
    }
    assert!(splits_for(32, 3072, 3072) > 1 && splits_for(729, 1152, 4320) > 1 && splits_for(895, 9216, 3072) == 1);
}

/// f32 online softmax against an f64 reference.
const ATTENTION_TOL: f64 = 1e-5;

#[test]
fn attention_matches_cpu_reference() {
    use fusion::kernels::Mask::{Causal, Full};
    use fusion::kernels::attention::check_against_reference;
    // (heads, kv_heads, rows, keys, head_dim), spare cache rows after the keys, mask, key bias
    let cases = [
        ((3, 3, 7, 7, 16), 249, Causal, false), // prefill of a tiny model into a fresh cache
        ((6, 2, 5, 133, 12), 123, Causal, false), // prefill after 128 cached positions, GQA 3
        ((4, 4, 1, 300, 24), 212, Causal, false), // split-K decode over 3 chunks
        ((8, 2, 1, 1, 8), 0, Causal, false),    // first decode step, GQA 4
        ((6, 1, 1, 257, 20), 1, Causal, false), // multi-query decode (group 6: padded to 8)
        ((5, 5, 70, 70, 9), 0, Full, true),     // vision rows with padded question keys, odd hd
        ((32, 8, 1, 700, 128), 324, Causal, false), // LLaMA-3.1-8B decode shape
        ((32, 32, 1, 650, 96), 374, Causal, false), // Phi-3.5 decode shape
        ((2, 2, 90, 661, 96), 363, Causal, false), // Phi-3.5 prefill tail, 96-wide heads
        ((8, 2, 77, 203, 128), 5, Causal, false), // LLaMA-3.1 prefill after 126 cached positions: GQA 4, a part-filled row block
        ((1, 1, 3, 4000, 128), 96, Causal, false), // long context, 128-wide heads
        ((2, 2, 745, 745, 72), 0, Full, true),    // so400m tower: 729 patches + 16 question tokens
        ((8, 1, 1, 100, 256), 3, Causal, false), // a decode step the split-K kernel leaves to the many-rows one (memory)
        ((2, 2, 1, 50, 9), 5, Causal, false),    // and one it leaves for its width (not whole vec4s)
    ];
    for ((heads, kv, s, t, hd), spare, mask, bias) in cases {
        let seed = fresh_seed();
        let err =
            pollster::block_on(check_against_reference(gpu(), (heads, kv, s, t, hd), spare, mask, bias, seed)).unwrap();
        assert!(
            err < ATTENTION_TOL,
            "heads={heads} kv={kv} s={s} t={t} hd={hd} spare={spare} {mask:?} bias={bias} seed={seed}: rel L2 {err:e}"
        );
    }
}

#[test]
fn attention_rejects_mismatched_shapes() {
    use burn::tensor::Tensor;
    use fusion::kernels::{Mask, attention};
    let t = |shape: [usize; 3]| Tensor::<3>::zeros(shape, gpu().device());
    let e = attention(gpu(), t([3, 2, 8]), t([2, 2, 8]), t([2, 2, 8]), 2, Mask::Causal, None).err().unwrap();
    assert!(e.to_string().contains("do not fit"), "{e}");
    let e = attention(gpu(), t([2, 2, 8]), t([2, 3, 8]), t([2, 3, 8]), 4, Mask::Causal, None).err().unwrap();
    assert!(e.to_string().contains("4 keys do not fit"), "{e}");
    let e = attention(gpu(), t([2, 5, 8]), t([2, 3, 8]), t([2, 3, 8]), 3, Mask::Causal, None).err().unwrap();
    assert!(e.to_string().contains("5 causal rows"), "{e}");
    let e = attention(gpu(), t([1, 2, 300]), t([1, 2, 300]), t([1, 2, 300]), 2, Mask::Full, None).err().unwrap();
    assert!(e.to_string().contains("outside"), "{e}");
}

#[test]
fn copy_is_exact() {
    // Sizes past one dispatch's grid (4096 × 256 vec4s) exercise the grid-stride loop.
    for len in [4, 1000, 4 * 4096 * 256 + 44] {
        let seed = fresh_seed();
        let wrong = pollster::block_on(fusion::kernels::copy::check(gpu(), len, seed)).unwrap();
        assert_eq!(wrong, 0, "len={len} seed={seed}");
    }
}

#[test]
fn embedding_lookup_is_exact() {
    // f16 and f32 tables, prompt ids and GPU picks. Odd widths make rows share their last f16
    // pair with the next row.
    for (vocab, cols, ids) in [(10, 8, 3), (37, 47, 9), (1000, 3072, 5), (7, 1, 200_000)] {
        let seed = fresh_seed();
        let wrong = pollster::block_on(fusion::kernels::embedding::check(gpu(), vocab, cols, ids, seed)).unwrap();
        assert_eq!(wrong, 0, "vocab={vocab} cols={cols} ids={ids} seed={seed}");
    }
}

#[test]
fn argmax_picks_what_the_cpu_picks() {
    // One workgroup's worth and one more, a vocabulary of each model, and one that needs three passes.
    for n in [1, 7, 2048, 2049, 32064, 128_256, 5_000_001] {
        let seed = fresh_seed();
        let wrong = pollster::block_on(fusion::kernels::argmax::check(gpu(), n, seed)).unwrap();
        assert_eq!(wrong, 0, "n={n} seed={seed}");
    }
}

/// f32 element-wise arithmetic (and one f32 sum per row) against f64 references.
const ELEMENTWISE_TOL: f64 = 1e-6;

#[test]
fn rms_norm_matches_cpu_reference() {
    // One row; odd widths below and above the workgroup; the decoders' widths; many rows
    // (more workgroups than one dispatch dimension holds).
    for (rows, cols) in [(1, 1), (3, 255), (2, 257), (5, 3072), (1, 4096), (900, 48), (70_000, 3)] {
        let seed = fresh_seed();
        let err = pollster::block_on(fusion::kernels::rms_norm::check(gpu(), rows, cols, seed)).unwrap();
        assert!(err < ELEMENTWISE_TOL, "rows={rows} cols={cols} seed={seed}: rel L2 {err:e}");
    }
}

#[test]
fn rope_into_cache_matches_cpu_reference() {
    // (positions, heads, kv heads, head_dim), packed as the fused projection or not, (first
    // cache row, cache rows): Phi-3.5's and LLaMA-3.1's decode steps, odd sizes, a prefill-sized
    // block.
    let cases = [
        ((1, 32, 32, 96), true, (650, 1024)),
        ((1, 32, 8, 128), true, (700, 1024)),
        ((1, 32, 8, 128), false, (0, 256)),
        ((7, 3, 1, 10), false, (5, 13)),
        ((7, 6, 2, 10), true, (0, 7)),
        ((895, 3, 3, 16), true, (1, 1024)),
    ];
    for (dims, fused, rows) in cases {
        let seed = fresh_seed();
        let err = pollster::block_on(fusion::kernels::rope::check(gpu(), dims, fused, rows, seed)).unwrap();
        assert!(err < ELEMENTWISE_TOL, "{dims:?} fused={fused} rows={rows:?} seed={seed}: rel L2 {err:e}");
    }
}

#[test]
fn swiglu_matches_cpu_reference() {
    for (rows, inter) in [(1, 1), (1, 8192), (1, 14336), (3, 257), (895, 80)] {
        let seed = fresh_seed();
        let err = pollster::block_on(fusion::kernels::swiglu::check(gpu(), rows, inter, seed)).unwrap();
        assert!(err < ELEMENTWISE_TOL, "rows={rows} inter={inter} seed={seed}: rel L2 {err:e}");
    }
}

#[test]
fn small_kernels_reject_mismatched_shapes() {
    use burn::tensor::Tensor;
    let dev = gpu().device();
    let e = fusion::kernels::rms_norm(gpu(), Tensor::<2>::zeros([2, 8], dev), &Tensor::<1>::zeros([7], dev), 1e-5)
        .err()
        .unwrap();
    assert!(e.to_string().contains("the weight has 7"), "{e}");
    let table = Tensor::<2>::zeros([1, 8], dev);
    let (k, v) = (Tensor::<3>::zeros([2, 4, 8], dev), Tensor::<3>::zeros([2, 4, 8], dev));
    // q: 2 heads of 8 from column 0; k and v: 2 heads each after it.
    let rope = |cols: usize, k: &Tensor<3>, v: &Tensor<3>, start: usize| {
        let projections = fusion::kernels::Projections { x: Tensor::<2>::zeros([1, cols], dev), q: 0, k: 16, v: 32 };
        let positions = gpu().upload_u32(&[start as u32, start as u32 + 1, 0, 0]);
        fusion::kernels::rope_into_cache(
            gpu(),
            projections,
            (2, 8),
            &table,
            &table,
            fusion::kernels::CacheRows { k, v, start, positions: &positions },
        )
        .err()
        .unwrap()
    };
    let e = rope(40, &k, &v, 0);
    assert!(e.to_string().contains("from columns 0, 16, 32 do not fit 1×40"), "{e}");
    let e = rope(48, &k, &v, 4);
    assert!(e.to_string().contains("cannot take rows 4..5"), "{e}");
    let e = rope(48, &k.clone().slice([0..2, 0..2, 0..8]), &v, 0);
    assert!(e.to_string().contains("cannot take rows"), "{e}");
    // A transposed view would be copied to be read: the writes would go to the copy.
    let view = Tensor::<3>::zeros([8, 4, 2], dev).swap_dims(0, 2);
    let e = rope(48, &view, &view, 0);
    assert!(e.to_string().contains("not contiguous"), "{e}");
    let e = fusion::kernels::swiglu(gpu(), Tensor::<2>::zeros([2, 7], dev)).err().unwrap();
    assert!(e.to_string().contains("even"), "{e}");
}
