//! Rotary position embedding of q and k, fused with the KV-cache write, in one launch
//! (`shaders/rope.wgsl`).

use burn::tensor::{Tensor, TensorData};
use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::source::Buffer::{Read, ReadWrite, Write};
use super::source::{Wgsl, grid};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;

/// A layer's projections for its new positions, side by side in one `x [S, cols]` (Phi-3.5's
/// fused qkv as it comes out), and the columns where q's, k's and v's heads start.
pub struct Projections {
    pub x: Tensor<2>,
    pub q: usize,
    pub k: usize,
    pub v: usize,
}

/// A layer's KV cache: keys and values `[kv_heads, capacity, head_dim]`, written in place at
/// rows `start ..`. The kernel reads `start` at index 0 of `positions` (a decode step's
/// positions buffer, rewritten before each replay of a recorded step); `start` here is what it
/// holds now, to check the rows fit.
pub struct CacheRows<'a> {
    pub k: &'a Tensor<3>,
    pub v: &'a Tensor<3>,
    pub start: usize,
    pub positions: &'a Handle,
}

/// q's `heads` heads of `head_dim`, rotated by the position tables (`model::rope::Rope::tables`),
/// as `[heads, S, head_dim]`; k's heads rotated and v's copied into `cache` rows
/// `start .. start + S`, leaving every other row as it was.
///
/// # Shapes
/// `cos`/`sin [S, head_dim]`; `x.x [S, cols]` with q's `heads` heads from column `x.q`, k's and
/// v's `kv_heads` from `x.k` and `x.v`; `cache.k`/`cache.v [kv_heads, capacity ≥ start + S, head_dim]`
pub fn rope_into_cache(
    gpu: &Gpu,
    x: Projections,
    (heads, head_dim): (usize, usize),
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    cache: CacheRows,
) -> Result<Tensor<3>> {
    const OP: &str = "rope";
    let [kv_heads, capacity, cache_hd] = cache.k.dims();
    let [s, cols] = x.x.dims();
    let fits = |offset: usize, n: usize| offset + n * head_dim <= cols;
    if !head_dim.is_multiple_of(2) || !fits(x.q, heads) || !fits(x.k, kv_heads) || !fits(x.v, kv_heads) {
        return Err(Error::shape(
            OP,
            format!(
                "{heads} q heads and {kv_heads} kv heads of {head_dim} from columns {}, {}, {} do not fit {s}×{cols}",
                x.q, x.k, x.v
            ),
        ));
    }
    if cos.dims() != [s, head_dim] || sin.dims() != [s, head_dim] {
        return Err(Error::shape(OP, format!("tables {:?} for {s} positions of {head_dim}", cos.dims())));
    }
    if cache.v.dims() != cache.k.dims() || cache_hd != head_dim || cache.start + s > capacity {
        return Err(Error::shape(
            OP,
            format!(
                "cache k {:?}, v {:?} cannot take rows {}..{} of {head_dim}",
                cache.k.dims(),
                cache.v.dims(),
                cache.start,
                cache.start + s
            ),
        ));
    }
    let total = (heads + 2 * kv_heads) * s * head_dim;
    let (offsets, x) = ([x.q, x.k, x.v], gpu.buffer_of(OP, x.x)?);
    let (cos, sin) = (gpu.buffer_of(OP, cos.clone())?, gpu.buffer_of(OP, sin.clone())?);
    let (k_cache, v_cache) = (gpu.buffer_in_place(OP, cache.k.clone())?, gpu.buffer_in_place(OP, cache.v.clone())?);
    let q_out = gpu.empty_f32(heads * s * head_dim);
    let (groups_x, groups_y) = grid(total.div_ceil(WORKGROUP as usize));
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/rope.wgsl"),
        constants: vec![("workgroup_size", WORKGROUP)],
        flags: vec![],
    };
    let params = [s, heads, kv_heads, head_dim, cols, offsets[0], offsets[1], offsets[2], capacity, total, groups_x, 0]
        .map(|v| v as u32);
    let buffers = [
        Read(&x.handle),
        Read(&cos.handle),
        Read(&sin.handle),
        Write(&q_out),
        ReadWrite(&k_cache.handle),
        ReadWrite(&v_cache.handle),
        Read(cache.positions),
    ];
    source.launch(gpu, CubeDim::new_1d(WORKGROUP), (groups_x, groups_y), &buffers, &params);
    Ok(gpu.tensor_of(q_out, [heads, s, head_dim]))
}

/// [`rope_into_cache`] on fresh random inputs against the CPU formula: `s` positions of `heads`
/// q heads and `kv_heads` kv heads written at row `start` of a cache of `capacity` rows of
/// noise. q, k and v come packed as Phi-3.5's fused projection, or in another order (v, q, k)
/// with unused columns around their heads. Returns the larger relative L2 error of q and of the
/// rows written; a change to any other cache row is an error.
pub async fn check(
    gpu: &Gpu,
    (s, heads, kv_heads, head_dim): (usize, usize, usize, usize),
    fused: bool,
    (start, capacity): (usize, usize),
    seed: u64,
) -> Result<f64> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let dev = gpu.device();
    let matrix = |data: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(data, shape), dev);
    let (q_cols, kv_cols) = (heads * head_dim, kv_heads * head_dim);
    // Columns of x, and where q's, k's and v's heads start.
    let (cols, [q_at, k_at, v_at]) = match fused {
        true => (q_cols + 2 * kv_cols, [0, q_cols, q_cols + kv_cols]),
        false => (q_cols + 2 * kv_cols + 5, [kv_cols + 2, kv_cols + 2 + q_cols + 1, 1]),
    };
    let x = rng.normal_vec(s * cols, 1.0);
    let angles: Vec<f64> = (0..s * head_dim).map(|_| rng.next_f32() as f64 * 6.3).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos() as f32).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin() as f32).collect();
    let cache_len = kv_heads * capacity * head_dim;
    let (k_cache, v_cache) = (rng.normal_vec(cache_len, 1.0), rng.normal_vec(cache_len, 1.0));

    let half = head_dim / 2;
    let head = |offset: usize, h: usize, r: usize| -> Vec<f64> {
        (0..head_dim).map(|d| x[r * cols + offset + h * head_dim + d] as f64).collect()
    };
    let rotate = |x: Vec<f64>, r: usize| -> Vec<f32> {
        let t = |d: usize| (cos[r * head_dim + d] as f64, sin[r * head_dim + d] as f64);
        (0..head_dim)
            .map(|d| (x[d] * t(d).0 + if d < half { -x[d + half] } else { x[d - half] } * t(d).1) as f32)
            .collect()
    };
    let mut want_q = Vec::with_capacity(heads * s * head_dim);
    for h in 0..heads {
        for r in 0..s {
            want_q.extend(rotate(head(q_at, h, r), r));
        }
    }
    // The written rows of each cache buffer, in cache order, and which rows those are.
    let written = |h: usize, r: usize| (h * capacity + start + r) * head_dim;
    let (mut want_k, mut want_v) = (Vec::new(), Vec::new());
    for h in 0..kv_heads {
        for r in 0..s {
            want_k.extend(rotate(head(k_at, h, r), r));
            want_v.extend(head(v_at, h, r).into_iter().map(|x| x as f32));
        }
    }

    let cache3 = |data: Vec<f32>| Tensor::<3>::from_data(TensorData::new(data, [kv_heads, capacity, head_dim]), dev);
    let (k_buf, v_buf) = (cache3(k_cache.clone()), cache3(v_cache.clone()));
    let q = rope_into_cache(
        gpu,
        Projections { x: matrix(x.clone(), [s, cols]), q: q_at, k: k_at, v: v_at },
        (heads, head_dim),
        &matrix(cos.clone(), [s, head_dim]),
        &matrix(sin.clone(), [s, head_dim]),
        CacheRows {
            k: &k_buf,
            v: &v_buf,
            start,
            positions: &gpu.upload_u32(&[start as u32, (start + s) as u32, 0, 0]),
        },
    )?;
    let q = crate::gpu::read_f32(q).await?;
    let mut errors = vec![crate::quant::rel_l2(&q, &want_q)];
    for (name, buffer, before, want) in [("k", k_buf, &k_cache, &want_k), ("v", v_buf, &v_cache, &want_v)] {
        let mut got = crate::gpu::read_f32(buffer).await?;
        let mut rows = Vec::with_capacity(want.len());
        for h in 0..kv_heads {
            for r in 0..s {
                let at = written(h, r);
                rows.extend(got[at..at + head_dim].iter().copied());
                got[at..at + head_dim].copy_from_slice(&before[at..at + head_dim]);
            }
        }
        if got != *before {
            return Err(Error::Execution(format!(
                "rope: rows of the {name} cache outside {start}..{} changed",
                start + s
            )));
        }
        errors.push(crate::quant::rel_l2(&rows, want));
    }
    Ok(errors.into_iter().fold(0.0, f64::max))
}
