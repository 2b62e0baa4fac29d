//! Fused attention (`shaders/attention.wgsl` for many query rows, `shaders/attention_decode.wgsl`
//! for one), next to its CPU reference.

use burn::tensor::{Tensor, TensorData};
use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::source::Buffer::{Read, Write};
use super::source::Wgsl;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// The many-rows kernel's workgroup: 64 invocations, 32 query rows (its BR), tiles of 32 keys
/// (its BC).
const INVOCATIONS: u32 = 64;
const ROWS: usize = 32;
const TILE_KEYS: usize = 32;
/// WebGPU guarantees 16 KiB of workgroup memory.
const WORKGROUP_FLOATS: usize = 4096;
/// Keys per workgroup of split-K decode: short, so a decode step's cache spreads over many
/// workgroups (a 1000-key cache: ~30 per kv head) and each one's dependent steps are few; the
/// merge pass reads ~3 % of what the partials pass reads.
const DECODE_CHUNK: u32 = 32;
/// Four invocations per key of a chunk when scoring.
const DECODE_WORKGROUP: u32 = DECODE_CHUNK * 4;
/// Query heads per kv head the decode kernel takes (LLaMA-3.1: 4; Phi-3.5: 1).
pub const MAX_GROUP: usize = 8;
/// Head widths the kernels take: the many-rows kernel holds hd / 2 accumulators per invocation.
pub const MAX_HEAD_DIM: usize = 256;

/// How many keys attention covers: `count`, which the split-K decode kernel reads at index 1
/// of `on_gpu` where given (a decode step's positions buffer, rewritten before each replay of a
/// recorded step; the kernel then has a slot for every chunk the cache holds).
#[derive(Clone, Copy, Debug)]
pub struct Keys<'a> {
    pub count: usize,
    pub on_gpu: Option<&'a Handle>,
}

impl From<usize> for Keys<'_> {
    fn from(count: usize) -> Self {
        Self { count, on_gpu: None }
    }
}

/// Which keys a query row sees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mask {
    /// Decoder: row `i` of the new rows sees keys `0 ..= past + i`, `past = keys − rows`.
    Causal,
    /// Vision tower: every key, with an optional additive per-key bias (`f32::MIN` masks).
    Full,
}

/// `softmax(q·kᵀ/√hd + bias)·v` per head over the first `t` rows of `k` and `v`, without
/// materialising the scores. `k` and `v` may have more rows (a KV cache's spare capacity):
/// they are read in place, never copied.
///
/// # Shapes
/// `q [heads, S, hd]`, `k`/`v [kv_heads, capacity ≥ t, hd]`, `bias [t]` → `[heads, S, hd]`,
/// where `heads` is a multiple of `kv_heads` (GQA: head `h` reads kv head `h / (heads / kv_heads)`).
pub fn attention<'a>(
    gpu: &Gpu,
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    keys: impl Into<Keys<'a>>,
    mask: Mask,
    bias: Option<Tensor<1>>,
) -> Result<Tensor<3>> {
    const OP: &str = "attention";
    let keys = keys.into();
    let t = keys.count;
    let [heads, s, hd] = q.dims();
    let [kv_heads, capacity, khd] = k.dims();
    if v.dims() != [kv_heads, capacity, hd]
        || khd != hd
        || kv_heads == 0
        || heads % kv_heads != 0
        || t > capacity
        || t == 0
    {
        return Err(Error::shape(
            OP,
            format!("q {:?}, k {:?}, v {:?} with {t} keys do not fit one attention", q.dims(), k.dims(), v.dims()),
        ));
    }
    if s == 0 || hd == 0 || hd > MAX_HEAD_DIM || heads.max(s.div_ceil(ROWS)) > super::source::MAX_WORKGROUPS_PER_DIM {
        return Err(Error::shape(OP, format!("{heads} heads of {s} rows × {hd}: outside what the kernel takes")));
    }
    if mask == Mask::Causal && s > t {
        return Err(Error::shape(OP, format!("{s} causal rows but only {t} keys")));
    }
    if let Some(b) = &bias
        && b.dims() != [t]
    {
        return Err(Error::shape(OP, format!("bias has {} entries for {t} keys", b.dims()[0])));
    }
    let group = heads / kv_heads;
    let scale = (hd as f32).powf(-0.5);
    if s == 1
        && group <= MAX_GROUP
        && bias.is_none()
        && let Some(parts) = decode_parts(group.next_power_of_two(), hd)
    {
        return decode(gpu, q, k, v, keys, (group, parts), scale);
    }
    let source = Wgsl {
        name: OP,
        text: include_str!("../../../shaders/attention.wgsl"),
        constants: many_rows_tiling(hd),
        flags: vec![],
    };
    let past = if mask == Mask::Causal { t - s } else { 0 };
    let params = [
        s as u32,
        t as u32,
        group as u32,
        past as u32,
        (mask == Mask::Causal) as u32,
        bias.is_some() as u32,
        scale.to_bits(),
        capacity as u32,
    ];
    let out = gpu.empty_f32(heads * s * hd);
    let bias = match bias {
        Some(b) => gpu.buffer_of(OP, b)?.handle,
        None => gpu.unused_binding().clone(),
    };
    let [q, k, v] = [gpu.buffer_of(OP, q)?.handle, gpu.buffer_of(OP, k)?.handle, gpu.buffer_of(OP, v)?.handle];
    source.launch(
        gpu,
        CubeDim::new_1d(INVOCATIONS),
        (s.div_ceil(ROWS), heads),
        &[Read(&q), Read(&k), Read(&v), Read(&bias), Write(&out)],
        &params,
    );
    Ok(gpu.tensor_of(out, [heads, s, hd]))
}

/// The many-rows kernel's staging for a head width (see the shader): head dims staged per step
/// of S in as few steps of at most 8 vec4s as there can be, so none is wasted on padding
/// (hd 72: 3 steps of 6; 96: 3 of 8; 128: 4 of 8); V rows staged at a time, as many as fit
/// where Q and K were (a power of two that divides the tile: 16 at hd 72–128, 8 at 256).
fn many_rows_tiling(hd: usize) -> Vec<(&'static str, u32)> {
    let hd4 = hd.div_ceil(4);
    let steps = hd4.div_ceil(8);
    let per_step = hd4.div_ceil(steps);
    let stage = (ROWS + TILE_KEYS) * (per_step | 1);
    let value_rows = 1 << (stage / hd4).min(TILE_KEYS).ilog2();
    vec![
        ("head_dim", hd as u32),
        ("dims_per_step", per_step as u32),
        ("value_rows", value_rows as u32),
        ("stage", stage as u32),
    ]
}

/// How many groups of invocations share the decode kernel's P·V (its `parts`): as many as the
/// invocations make (one vec4 of a value row each) and workgroup memory holds beside the
/// kernel's other arrays. `None` where the kernel does not apply: a head width that is not a
/// multiple of 4 (its vec4 loads), or too wide a group of wide heads for even one part.
fn decode_parts(max_group: usize, hd: usize) -> Option<u32> {
    let (wg, chunk) = (DECODE_WORKGROUP as usize, DECODE_CHUNK as usize);
    // q, the per-lane dots, the chunk's probabilities and maxima; vec4 alignment slack.
    let fixed = max_group * (hd + wg + chunk + 1) + 4;
    let parts = WORKGROUP_FLOATS.saturating_sub(fixed) / (max_group * hd.max(1));
    let parts = parts.min(wg / (hd / 4).max(1));
    (hd.is_multiple_of(4) && hd > 0 && parts >= 1).then_some(parts as u32)
}

/// One query row per head: split-K partials, then the merge (see the shader).
fn decode(
    gpu: &Gpu,
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    keys: Keys,
    (group, parts): (usize, u32),
    scale: f32,
) -> Result<Tensor<3>> {
    const OP: &str = "attention_decode";
    let [heads, _, hd] = q.dims();
    let [kv_heads, capacity, _] = k.dims();
    let t = keys.count;
    // Chunk slots: for the keys there are, or for all the cache can hold when the count is read
    // on the GPU and may grow from one replay to the next.
    let (count, slots) = match keys.on_gpu {
        Some(on_gpu) => (on_gpu.clone(), capacity.div_ceil(DECODE_CHUNK as usize)),
        None => (gpu.upload_u32(&[0, t as u32, 0, 0]), t.div_ceil(DECODE_CHUNK as usize)),
    };
    if slots > super::source::MAX_WORKGROUPS_PER_DIM {
        return Err(Error::shape(OP, format!("{t} keys need more than one dispatch")));
    }
    let pass = |pass: u32| Wgsl {
        name: OP,
        text: include_str!("../../../shaders/attention_decode.wgsl"),
        constants: vec![
            ("pass", pass),
            ("workgroup_size", DECODE_WORKGROUP),
            ("head_dim", hd as u32),
            ("chunk", DECODE_CHUNK),
            ("max_group", group.next_power_of_two() as u32),
            ("parts", parts),
        ],
        flags: vec![],
    };
    let params = [group as u32, slots as u32, scale.to_bits(), capacity as u32];
    let part = gpu.empty_f32(heads * slots * (hd + 2));
    let out = gpu.empty_f32(heads * hd);
    let [q, k, v] = [gpu.buffer_of(OP, q)?.handle, gpu.buffer_of(OP, k)?.handle, gpu.buffer_of(OP, v)?.handle];
    // The partials pass writes `part`, the merge reads it and writes `out`.
    let partials = [Read(&q), Read(&k), Read(&v), Write(&part), Write(&out), Read(&count)];
    let merge = [Read(&q), Read(&k), Read(&v), Read(&part), Write(&out), Read(&count)];
    pass(0).launch(gpu, CubeDim::new_1d(DECODE_WORKGROUP), (slots, kv_heads), &partials, &params);
    pass(1).launch(gpu, CubeDim::new_1d(DECODE_WORKGROUP), (heads, 1), &merge, &params);
    Ok(gpu.tensor_of(out, [heads, 1, hd]))
}

/// The definition, in f64: scores, softmax, weighted sum. `q [heads·s·hd]`, `k`/`v [kv·t·hd]`.
pub fn attention_reference(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    (heads, kv_heads, s, t, hd): (usize, usize, usize, usize, usize),
    mask: Mask,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let group = heads / kv_heads;
    let past = t - s;
    let mut out = vec![0f32; heads * s * hd];
    for h in 0..heads {
        let kv = h / group;
        for i in 0..s {
            let visible = if mask == Mask::Causal { past + i + 1 } else { t };
            let qi = &q[(h * s + i) * hd..][..hd];
            let scores: Vec<f64> = (0..visible)
                .map(|j| {
                    let kj = &k[(kv * t + j) * hd..][..hd];
                    let dot: f64 = qi.iter().zip(kj).map(|(&a, &b)| a as f64 * b as f64).sum();
                    dot / (hd as f64).sqrt() + bias.map_or(0.0, |b| b[j] as f64)
                })
                .collect();
            let top = scores.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..hd {
                let o: f64 = e.iter().enumerate().map(|(j, w)| w * v[(kv * t + j) * hd + d] as f64).sum();
                out[(h * s + i) * hd + d] = (o / sum) as f32;
            }
        }
    }
    out
}

/// [`attention`] on fresh random inputs against [`attention_reference`]; returns the relative
/// L2 error. Shared by the native tests and the in-browser test.
///
/// `spare` extra rows of noise follow each kv head's `t` keys, as in a KV cache with room left:
/// they must not be read.
pub async fn check_against_reference(
    gpu: &Gpu,
    (heads, kv_heads, s, t, hd): (usize, usize, usize, usize, usize),
    spare: usize,
    mask: Mask,
    with_bias: bool,
    seed: u64,
) -> Result<f64> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let q = rng.normal_vec(heads * s * hd, 1.0);
    let k = rng.normal_vec(kv_heads * t * hd, 1.0);
    let v = rng.normal_vec(kv_heads * t * hd, 1.0);
    let with_spare = |x: &[f32], rng: &mut crate::rng::SplitMix64| -> Vec<f32> {
        x.chunks(t * hd).flat_map(|head| head.iter().copied().chain(rng.normal_vec(spare * hd, 1e3))).collect()
    };
    // Mask about a quarter of the keys the way the vision tower masks padding.
    let bias: Option<Vec<f32>> =
        with_bias.then(|| rng.normal_vec(t, 1.0).into_iter().map(|x| if x > 0.67 { f32::MIN } else { 0.0 }).collect());
    let want = attention_reference(&q, &k, &v, (heads, kv_heads, s, t, hd), mask, bias.as_deref());
    let dev = gpu.device();
    let tensor = |data: Vec<f32>, shape: [usize; 3]| Tensor::<3>::from_data(TensorData::new(data, shape), dev);
    let bias = bias.map(|b| Tensor::<1>::from_data(TensorData::new(b, [t]), dev));
    let (k_buf, v_buf) = (with_spare(&k, &mut rng), with_spare(&v, &mut rng));
    let got = attention(
        gpu,
        tensor(q, [heads, s, hd]),
        tensor(k_buf, [kv_heads, t + spare, hd]),
        tensor(v_buf, [kv_heads, t + spare, hd]),
        t,
        mask,
        bias,
    )?;
    Ok(crate::quant::rel_l2(&crate::gpu::read_f32(got).await?, &want))
}

#[cfg(test)]
mod tests {
    use super::{DECODE_CHUNK, DECODE_WORKGROUP, TILE_KEYS, WORKGROUP_FLOATS, decode_parts, many_rows_tiling};

    #[test]
    fn many_rows_kernel_fits_workgroup_memory() {
        for hd in 1..=super::MAX_HEAD_DIM {
            let c: std::collections::HashMap<_, _> = many_rows_tiling(hd).into_iter().collect();
            let (stage, per_step, value_rows) =
                (c["stage"] as usize, c["dims_per_step"] as usize, c["value_rows"] as usize);
            // Staged vec4s, probabilities [BC][8], partial maxima [8][8].
            assert!((stage + TILE_KEYS * 8 + 64) * 4 <= WORKGROUP_FLOATS, "hd {hd}");
            // As few steps of S as with steps of 8 vec4s, each at most 8.
            assert!(per_step <= 8 && hd.div_ceil(4).div_ceil(per_step) == hd.div_ceil(32), "hd {hd}");
            // V rows staged at a time: the most that fit where Q and K were, as a power of two
            // dividing the tile (the shader's loop over a tile's keys).
            assert!(TILE_KEYS.is_multiple_of(value_rows) && value_rows * hd.div_ceil(4) <= stage, "hd {hd}");
            let twice = 2 * value_rows;
            assert!(
                !(TILE_KEYS.is_multiple_of(twice) && twice * hd.div_ceil(4) <= stage),
                "hd {hd}: {twice} V rows would fit too"
            );
        }
    }

    /// The decode shader's `var<workgroup>` arrays in floats, in declaration order with each
    /// array at its element's alignment (vec4: 4 floats), as counted from
    /// `shaders/attention_decode.wgsl` apart from `decode_parts`'s own sum.
    fn decode_shader_floats(max_group: usize, hd: usize, parts: usize) -> usize {
        let (wg, chunk) = (DECODE_WORKGROUP as usize, DECODE_CHUNK as usize);
        let (q_group, dots, probs, top) = (max_group * hd, max_group * wg, max_group * chunk, max_group);
        let outs = parts * max_group * hd;
        (q_group + dots + probs + top).next_multiple_of(4) + outs + 1
    }

    #[test]
    fn decode_kernel_fits_workgroup_memory_or_steps_aside() {
        let wg = DECODE_WORKGROUP as usize;
        for max_group in [1, 2, 4, 8] {
            for hd in 1..=super::MAX_HEAD_DIM {
                let fits = |parts: usize| {
                    decode_shader_floats(max_group, hd, parts) <= WORKGROUP_FLOATS && parts * (hd / 4) <= wg
                };
                match decode_parts(max_group, hd) {
                    // As many parts as fit: each part a vec4 of a value row per invocation.
                    Some(parts) => {
                        let parts = parts as usize;
                        assert!(
                            hd.is_multiple_of(4) && parts >= 1 && fits(parts),
                            "group {max_group}, hd {hd}: {parts} parts do not fit"
                        );
                        assert!(!fits(parts + 1), "group {max_group}, hd {hd}: {} parts would fit too", parts + 1);
                    }
                    // The many-rows kernel takes it: not whole vec4s, or not even one part fits.
                    None => assert!(
                        !hd.is_multiple_of(4) || !fits(1),
                        "group {max_group}, hd {hd}: the decode kernel would fit"
                    ),
                }
            }
        }
        // The published shapes take the decode kernel: Phi-3.5 (group 1, 96 wide), LLaMA-3.1
        // (group 4, 128 wide).
        assert!(decode_parts(1, 96).is_some() && decode_parts(4, 128).is_some());
    }
}
