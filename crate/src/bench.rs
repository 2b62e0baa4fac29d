//! `fusion bench`: kernel and whole-model speed as a JSON report. Every figure comes with the
//! ceiling it should be read against, measured in the same run on the same device (the copy
//! bandwidth) or computed from it (the decode roofline), and with burn's stock ops on the same
//! shapes, so the gain of each of our kernels is visible. Models are the published shapes with
//! random int4 weights made on the fly (`testing::RandomModel`): no weights needed.

use burn::tensor::{Tensor, TensorData};
use serde_json::{Value, json};

use crate::config::Backbone;
use crate::error::{Error, Result};
use crate::generate::{Sampler, SamplingOptions, nucleus, nucleus_by_sorting_all};
use crate::gpu::{Gpu, now_ms, read_f32};
use crate::image::Views;
use crate::kernels::int4_matmul::{int4_matmul_precision, int4_matmul_split, splits_for};
use crate::kernels::int4_matvec::Norm;
use crate::kernels::{
    Int4Matrix, Mask, argmax, int4_matmul, int4_matvec, int4_matvec_normed, int4_matvec_swiglu, rms_norm, swiglu,
};
use crate::model::{FusionModel, Kernels, VisionOptions, WeightFormat};
use crate::quant::Int4Weight;
use crate::testing::{RandomModel, RandomWeights, TinySpec};
use crate::tokenizer::Tokenizer;

/// Which model's shapes to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shapes {
    /// The tiny test model: checks the bench itself (CI, lavapipe).
    Tiny,
    /// FUSION-Phi3.5-3B: so400m tower, Phi-3.5-mini (3.8B) decoder.
    Fusion3b,
    /// FUSION-X-Phi3.5-3B: SigLIP2-giant tower.
    FusionX3b,
    /// FUSION-LLaMA3.1-8B.
    Fusion8b,
    /// FUSION-X-LLaMA3.1-8B.
    FusionX8b,
}

impl Shapes {
    pub fn name(self) -> &'static str {
        match self {
            Shapes::Tiny => "tiny",
            Shapes::Fusion3b => "FUSION-Phi3.5-3B",
            Shapes::FusionX3b => "FUSION-X-Phi3.5-3B",
            Shapes::Fusion8b => "FUSION-LLaMA3.1-8B",
            Shapes::FusionX8b => "FUSION-X-LLaMA3.1-8B",
        }
    }

    fn spec(self) -> TinySpec {
        match self {
            Shapes::Tiny => TinySpec::new(Backbone::Phi),
            Shapes::Fusion3b => TinySpec::real(Backbone::Phi, false),
            Shapes::FusionX3b => TinySpec::real(Backbone::Phi, true),
            Shapes::Fusion8b => TinySpec::real(Backbone::Llama, false),
            Shapes::FusionX8b => TinySpec::real(Backbone::Llama, true),
        }
    }
}

pub struct BenchOptions {
    pub shapes: Vec<Shapes>,
    /// Decode steps timed per model.
    pub decode_tokens: usize,
    /// Repeats of each kernel measurement (after one warm-up launch).
    pub repeats: usize,
    /// int4 group size.
    pub group: usize,
    /// Also time burn's f32 matmul on every decoder shape, next to our int4 kernels.
    pub stock_matmul: bool,
    /// Also run each whole model with f32 weights through burn's matmul and attention (4 bytes
    /// per parameter of GPU memory, and minutes of a short lease for the 8B: off by default).
    pub f32_model: bool,
    /// Bytes the copy-bandwidth probe moves each way.
    pub copy_bytes: usize,
}

/// What runs the kernels, as both reports name it.
const BACKEND: &str = "wgpu (burn 0.22 / cubecl 0.11, WGSL)";

/// A question as users ask it; the byte-level test tokenizer makes it ≈ 60 tokens.
const QUESTION: &str = "What is unusual about this image? Describe it in detail.";

/// Measure every model of `o` on `gpu`. `save` gets the report so far after each phase of each
/// model (the CLI writes it out), so a run stopped by a lease's time limit keeps all it measured.
pub fn run(gpu: &Gpu, o: &BenchOptions, save: &mut dyn FnMut(&Value) -> Result<()>) -> Result<Value> {
    let copy_gbs = copy_bandwidth(gpu, o)?;
    let mut report = json!({
        "device": gpu.adapter_name(),
        "shader_f16": gpu.capabilities().f16,
        "subgroups": gpu.capabilities().subgroups,
        "backend": BACKEND,
        "kernel_timing": format!("{:?}", gpu.client().properties().timing_method),
        "copy_bandwidth_gb_s": round(copy_gbs),
        "launch_us": launch_overhead_us(gpu)?,
        "text_stream_us": text_stream_us()?,
        "sampling_us": sampling_us(),
        "group_size": o.group,
        "models": [],
    });
    save(&report)?;
    let host = Gpu::noop()?;
    for &shapes in &o.shapes {
        let models = report["models"]
            .as_array_mut()
            .ok_or_else(|| Error::Execution("bench: the report lost its models".into()))?;
        let index = models.len();
        models.push(Value::Null);
        let mut model = ModelReport {
            shapes,
            figures: json!({"model": shapes.name(), "finished": false}),
            save: &mut |model: &Value| {
                report["models"][index] = model.clone();
                save(&report)
            },
        };
        bench_model(gpu, &host, o, copy_gbs, &mut model)?;
    }
    Ok(report)
}

/// One model's part of the report as it grows: each phase's figures printed on stderr and
/// saved as soon as they are measured; `finished` turns true after the last.
struct ModelReport<'a> {
    shapes: Shapes,
    figures: Value,
    save: &'a mut dyn FnMut(&Value) -> Result<()>,
}

impl ModelReport<'_> {
    fn add(&mut self, key: &str, figures: Value) -> Result<()> {
        progress(self.shapes, key, &figures);
        self.figures[key] = figures;
        (self.save)(&self.figures)
    }
}

/// `run`'s CPU side alone (`fusion bench --cpu-only`): no GPU needed.
pub fn run_cpu_side(o: &BenchOptions) -> Result<Value> {
    let host = Gpu::noop()?;
    let mut models = Vec::new();
    for &shapes in &o.shapes {
        let figures = bench_cpu_side(&host, o, shapes)?;
        progress(shapes, "cpu_side", &figures);
        models.push(json!({"model": shapes.name(), "cpu_side": figures}));
    }
    Ok(json!({"device": host.adapter_name(), "backend": BACKEND, "group_size": o.group, "models": models}))
}

/// Mean milliseconds per call of `f`, GPU-complete, after one warm-up call (which compiles).
fn time_ms(gpu: &Gpu, repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    pollster::block_on(gpu.sync())?;
    let start = now_ms();
    for _ in 0..repeats {
        f()?;
    }
    pollster::block_on(gpu.sync())?;
    Ok((now_ms() - start) / repeats.max(1) as f64)
}

/// Mean milliseconds per call of the kernels `f` launches, on the GPU's own clock (timestamp
/// queries) where the adapter has one: a kernel's time without the launch overhead that
/// `time_ms` includes. Elsewhere cubecl falls back to the host clock around a sync.
fn kernel_ms(gpu: &Gpu, repeats: usize, mut f: impl FnMut() -> Result<()> + Send) -> Result<f64> {
    f()?;
    pollster::block_on(gpu.sync())?;
    let repeats = repeats.max(1);
    let (result, duration) = gpu
        .client()
        .profile(|| (0..repeats).try_for_each(|_| f()), "fusion bench")
        .map_err(|e| Error::Execution(format!("profiling: {e:?}")))?;
    result?;
    let ticks = pollster::block_on(duration.resolve())
        .ok_or_else(|| Error::Execution("profiling: no timestamps came back".into()))?;
    Ok(ticks.duration().as_secs_f64() * 1e3 / repeats as f64)
}

/// Device copy bandwidth, read + write bytes per second, in GB/s.
fn copy_bandwidth(gpu: &Gpu, o: &BenchOptions) -> Result<f64> {
    let len = (o.copy_bytes / 4).next_multiple_of(4);
    let most = gpu.max_binding_bytes();
    if (len * 4) as u64 > most {
        return Err(Error::invalid(
            "bench",
            format!(
                "the copy probe's {} MiB exceed the {} MiB {} can bind: pass --copy-mib {} or less",
                (len * 4) >> 20,
                most >> 20,
                gpu.adapter_name(),
                most >> 20
            ),
        ));
    }
    let (src, dst) = (gpu.empty_f32(len), gpu.empty_f32(len));
    let ms = kernel_ms(gpu, o.repeats, || crate::kernels::copy::copy(gpu, &src, &dst, len, 0))?;
    Ok(2.0 * (len * 4) as f64 / (ms * 1e6))
}

/// Microseconds per kernel launch when the kernel itself is negligible (4 KiB), launches queued
/// back to back, for one of our WGSL kernels (a copy) and one of burn's (an add): the floor of a
/// decode step is this times its number of dispatches.
fn launch_overhead_us(gpu: &Gpu) -> Result<Value> {
    const LAUNCHES: usize = 1000;
    let (src, dst) = (gpu.empty_f32(1024), gpu.empty_f32(1024));
    let wgsl =
        time_ms(gpu, 1, || (0..LAUNCHES).try_for_each(|_| crate::kernels::copy::copy(gpu, &src, &dst, 1024, 0)))?;
    let x = Tensor::<1>::zeros([1024], gpu.device());
    let burn = time_ms(gpu, 1, || {
        drop((0..LAUNCHES).fold(x.clone(), |x, _| x + 1.0));
        Ok(())
    })?;
    Ok(json!({"wgsl": round(wgsl * 1e3 / LAUNCHES as f64), "burn": round(burn * 1e3 / LAUNCHES as f64)}))
}

/// CPU microseconds per token of turning an answer's ids into streamed text, at 512 and 2048
/// tokens: the engine's `TextStream` over a whole answer (its total ÷ tokens), against decoding the
/// whole answer at each step as it used to (its last step). Between two decode steps, so it counts
/// against decode speed: at the 3B's decode roofline a step is ≈ 1 ms. The generated byte-level
/// tokenizer: one token per byte of English text.
fn text_stream_us() -> Result<Value> {
    const REPEATS: usize = 20;
    let tokenizer =
        Tokenizer::from_bytes(crate::testing::tokenizer_json(Backbone::Phi).to_string().as_bytes(), Backbone::Phi)?;
    let ids = tokenizer
        .encode(&"A man irons clothes on a board attached to the back of a yellow taxi. ".repeat(32), false)?;
    let mut figures = Vec::new();
    for n in [512, 2048].map(|n| n.min(ids.len())) {
        let start = now_ms();
        let mut stream = tokenizer.text_stream();
        for end in 1..=n {
            std::hint::black_box(stream.next(&ids[..end])?);
        }
        let streamed = (now_ms() - start) * 1e3 / n as f64;
        let start = now_ms();
        for _ in 0..REPEATS {
            std::hint::black_box(tokenizer.decode(&ids[..n])?);
        }
        let whole = (now_ms() - start) * 1e3 / REPEATS as f64;
        figures.push(json!({"answer_tokens": n, "stream": round(streamed), "whole_answer_each_step": round(whole)}));
    }
    Ok(json!(figures))
}

/// CPU microseconds of a sampled pick (temperature 0.7) at the 3B's and the 8B's vocabularies,
/// between two decode steps as `text_stream_us` is: the whole pick, and the nucleus it draws
/// from found by selecting the most likely tokens against sorting them all (as it was). Random
/// logits of two spreads: flat (std 1, a nucleus of most of the vocabulary) and peaked (std 4).
/// The nucleus is found in a fresh copy of the same probabilities each time, the copy timed too.
fn sampling_us() -> Value {
    const REPEATS: usize = 10;
    let mut figures = Vec::new();
    for vocab in [32064, 128256] {
        for spread in [1.0, 4.0] {
            let logits = crate::rng::SplitMix64::new(vocab as u64).normal_vec(vocab, spread);
            let probs: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &v)| (i as u32, (v / 0.7).exp())).collect();
            let total: f32 = probs.iter().map(|p| p.1).sum();
            for (top_p, named) in [(0.9f32, 0.9), (1.0, 1.0)] {
                let mut sampler = Sampler::new(SamplingOptions { temperature: 0.7, top_p, ..Default::default() });
                let per_call_us = |f: &mut dyn FnMut() -> usize| {
                    let start = now_ms();
                    (0..REPEATS).for_each(|_| _ = std::hint::black_box(f()));
                    round((now_ms() - start) * 1e3 / REPEATS as f64)
                };
                let pick = per_call_us(&mut || sampler.pick(&logits) as usize);
                let selected = per_call_us(&mut || nucleus(&mut probs.clone(), top_p, total).0);
                let sorted = per_call_us(&mut || nucleus_by_sorting_all(&mut probs.clone(), top_p, total));
                let tokens = nucleus(&mut probs.clone(), top_p, total).0;
                figures.push(json!({"vocab": vocab, "spread": spread, "top_p": named, "nucleus_tokens": tokens, "pick": pick, "nucleus_selected": selected, "nucleus_sorting_all": sorted}));
            }
        }
    }
    json!(figures)
}

fn random_f32(gpu: &Gpu, shape: [usize; 2], seed: u64) -> Tensor<2> {
    let data = crate::rng::SplitMix64::new(seed).normal_vec(shape[0] * shape[1], 1.0);
    Tensor::from_data(TensorData::new(data, shape), gpu.device())
}

fn int4_bytes(rows: usize, cols: usize, group: usize) -> usize {
    rows * (Int4Weight::words_per_row(cols, group) * 4 + Int4Weight::groups_per_row(cols, group) * 2)
}

/// Four significant digits: enough for any measurement here, and tiny figures stay non-zero.
fn round(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The decoder's distinct linear shapes `[out, in]` with how many of each a token reads.
fn decoder_linears(model: &RandomModel) -> Vec<((usize, usize), usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for (name, shape) in &model.shapes {
        let decoder = name.starts_with("model.layers.") || name == &crate::weights::lm_head();
        if decoder && shape.len() == 2 {
            *counts.entry((shape[0], shape[1])).or_insert(0) += 1;
        }
    }
    counts.into_iter().collect()
}

/// Each finished phase on stderr, so a long run that is stopped still tells what it measured.
fn progress(shapes: Shapes, what: &str, figures: &Value) {
    eprintln!("[{:.1} s] {} {what}: {figures}", now_ms() / 1e3, shapes.name());
}

/// int4 matvec (decode) and GEMM (prefill; in f16 where the device has shader-f16, then also
/// in f32) on each decoder shape, against burn's f32 matmul.
fn bench_linears(
    gpu: &Gpu,
    o: &BenchOptions,
    shapes: &[((usize, usize), usize)],
    prefill_rows: usize,
    copy_gbs: f64,
) -> Result<Vec<Value>> {
    let mut random = RandomWeights::new(7, o.group);
    let mut out = Vec::new();
    for &((n, k), count) in shapes {
        let w = Int4Matrix::upload(gpu, &random.int4(n, k));
        let bytes = int4_bytes(n, k, o.group);
        let x1 = random_f32(gpu, [1, k], 1);
        let xm = random_f32(gpu, [prefill_rows, k], 2);
        let matvec_ms = kernel_ms(gpu, o.repeats, || int4_matvec(gpu, x1.clone(), &w).map(drop))?;
        let matmul_ms = kernel_ms(gpu, o.repeats, || int4_matmul(gpu, xm.clone(), &w).map(drop))?;
        let matvec_gbs = bytes as f64 / (matvec_ms * 1e6);
        let flops = 2.0 * (prefill_rows * n * k) as f64;
        let mut entry = json!({
            "shape": [n, k], "per_token": count, "int4_bytes": bytes,
            "int4_matvec_ms": round(matvec_ms), "int4_matvec_gb_s": round(matvec_gbs),
            "int4_matvec_vs_copy": round(matvec_gbs / copy_gbs),
            "int4_matmul_rows": prefill_rows, "int4_matmul_ms": round(matmul_ms), "int4_matmul_f16": gpu.capabilities().f16,
            "int4_matmul_tflop_s": round(flops / (matmul_ms * 1e9)),
        });
        if gpu.capabilities().f16 {
            let f32_ms = kernel_ms(gpu, o.repeats, || int4_matmul_precision(gpu, xm.clone(), &w, false).map(drop))?;
            entry["int4_matmul_f32_ms"] = json!(round(f32_ms));
            entry["int4_matmul_f32_tflop_s"] = json!(round(flops / (f32_ms * 1e9)));
        }
        if o.stock_matmul {
            let wt = random_f32(gpu, [k, n], 3);
            let stock_vec = kernel_ms(gpu, o.repeats, || {
                drop(x1.clone().matmul(wt.clone()));
                Ok(())
            })?;
            let stock_mat = kernel_ms(gpu, o.repeats, || {
                drop(xm.clone().matmul(wt.clone()));
                Ok(())
            })?;
            entry["burn_f32_matvec_ms"] = json!(round(stock_vec));
            entry["burn_f32_matmul_ms"] = json!(round(stock_mat));
            entry["int4_matvec_speedup"] = json!(round(stock_vec / matvec_ms));
            entry["int4_matmul_speedup"] = json!(round(stock_mat / matmul_ms));
        }
        out.push(entry);
    }
    Ok(out)
}

/// A GEMM shape the int4 GEMM splits along k: its name, rows of x and `[out, in]`.
type SplitCase<'a> = (&'a str, usize, (usize, usize));

/// The int4 GEMM split along k ([`splits_for`]'s choice) against unsplit, and against twice
/// the choice, on the shapes it splits: the data behind its `TARGET_WORKGROUPS`.
fn bench_gemm_splits(gpu: &Gpu, o: &BenchOptions, cases: &[SplitCase]) -> Result<Vec<Value>> {
    let f16 = gpu.capabilities().f16;
    let mut out = Vec::new();
    for &(what, m, (n, k)) in cases {
        let w = Int4Matrix::upload(gpu, &RandomWeights::new(23, o.group).int4(n, k));
        let x = random_f32(gpu, [m, k], 1);
        let chosen = splits_for(m, n, w.padded_cols());
        let mut candidates = vec![1, chosen, 2 * chosen];
        candidates.dedup();
        for splits in candidates {
            let ms = kernel_ms(gpu, o.repeats, || int4_matmul_split(gpu, x.clone(), &w, f16, splits).map(drop))?;
            out.push(json!({
                "case": what, "rows": m, "shape": [n, k], "splits": splits, "default": splits == chosen, "f16": f16,
                "ms": round(ms), "tflop_s": round(2.0 * (m * n * k) as f64 / (ms * 1e9)),
            }));
        }
    }
    Ok(out)
}

/// An attention shape to measure: its name, `(heads, kv_heads, query rows, keys, head_dim)`
/// and its mask.
type AttentionCase<'a> = (&'a str, (usize, usize, usize, usize, usize), Mask);

/// Fused attention against burn's stock attention at the model's decode, prefill and vision
/// shapes; for decode, which reads the KV cache once, also as bandwidth against the copy's.
fn bench_attention(gpu: &Gpu, o: &BenchOptions, cases: &[AttentionCase], copy_gbs: f64) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for &(what, (heads, kv, s, t, hd), mask) in cases {
        let mk = |shape: [usize; 3], seed| random_f32(gpu, [shape[0] * shape[1], shape[2]], seed).reshape(shape);
        let (q, k, v) = (mk([heads, s, hd], 4), mk([kv, t, hd], 5), mk([kv, t, hd], 6));
        let mut times = Vec::new();
        for imp in [Kernels::Fused, Kernels::Stock] {
            let f =
                || crate::model::attention::attend(gpu, imp, q.clone(), k.clone(), v.clone(), t, mask, None).map(drop);
            times.push(kernel_ms(gpu, o.repeats, f)?);
        }
        let mut entry = json!({
            "case": what, "heads": heads, "kv_heads": kv, "rows": s, "keys": t, "head_dim": hd,
            "fused_ms": round(times[0]), "burn_ms": round(times[1]), "speedup": round(times[1] / times[0]),
        });
        if s == 1 {
            let kv_bytes = 2 * kv * t * hd * 4;
            let gbs = kv_bytes as f64 / (times[0] * 1e6);
            entry["kv_bytes"] = json!(kv_bytes);
            entry["fused_gb_s"] = json!(round(gbs));
            entry["fused_vs_copy"] = json!(round(gbs / copy_gbs));
        }
        out.push(entry);
    }
    Ok(out)
}

/// A decode step's MLP up to its down projection, `silu(gate) · up` of the gate_up matvec: in
/// the matvec's epilogue (what the model runs) against the matvec and then our SwiGLU kernel.
fn bench_swiglu_epilogue(gpu: &Gpu, o: &BenchOptions, (n, k): (usize, usize)) -> Result<Value> {
    let w = Int4Matrix::upload(gpu, &RandomWeights::new(13, o.group).int4(n, k));
    let x = random_f32(gpu, [1, k], 1);
    let fused = kernel_ms(gpu, o.repeats, || int4_matvec_swiglu(gpu, x.clone(), &w).map(drop))?;
    let separate = kernel_ms(gpu, o.repeats, || swiglu(gpu, int4_matvec(gpu, x.clone(), &w)?).map(drop))?;
    Ok(
        json!({"shape": [n, k], "epilogue_ms": round(fused), "two_launches_ms": round(separate), "speedup": round(separate / fused)}),
    )
}

/// A decode step's qkv projection of the normed input: RMSNorm inside the matvec (what the model
/// runs) against our RMSNorm kernel and then the matvec.
fn bench_norm_prologue(gpu: &Gpu, o: &BenchOptions, (n, k): (usize, usize), eps: f64) -> Result<Value> {
    let w = Int4Matrix::upload(gpu, &RandomWeights::new(19, o.group).int4(n, k));
    let x = random_f32(gpu, [1, k], 1);
    let weight = random_f32(gpu, [1, k], 2).reshape([k]);
    let norm = Norm { weight: &weight, eps };
    let fused = kernel_ms(gpu, o.repeats, || int4_matvec_normed(gpu, x.clone(), &w, norm).map(drop))?;
    let separate =
        kernel_ms(gpu, o.repeats, || int4_matvec(gpu, rms_norm(gpu, x.clone(), &weight, eps)?, &w).map(drop))?;
    Ok(
        json!({"shape": [n, k], "prologue_ms": round(fused), "two_launches_ms": round(separate), "speedup": round(separate / fused)}),
    )
}

/// The int4 group size, measured: how well each candidate reconstructs weights (Gaussian, and
/// heavy-tailed with a few large entries, as trained LLM weights are) and how fast the decode
/// kernel streams the model's largest decoder matrix with it.
fn bench_group_sizes(gpu: &Gpu, o: &BenchOptions, (n, k): (usize, usize), copy_gbs: f64) -> Result<Vec<Value>> {
    let mut rng = crate::rng::SplitMix64::new(11);
    let (rows, cols) = (256, k.min(4096));
    let gaussian = rng.normal_vec(rows * cols, 1.0);
    // Laplace entries, one in a hundred scaled ×8: the outliers that make small groups pay.
    let heavy: Vec<f32> = (0..rows * cols)
        .map(|_| {
            let u = rng.next_f32().max(1e-7);
            let laplace = -u.ln() * if rng.next_f32() < 0.5 { -1.0 } else { 1.0 };
            if rng.next_f32() < 0.01 { 8.0 * laplace } else { laplace }
        })
        .collect();
    let error = |w: &[f32], group: usize| -> Result<f64> {
        Ok(crate::quant::rel_l2(&Int4Weight::quantize("sample", w, rows, cols, group)?.dequantize(), w))
    };
    let mut out = Vec::new();
    for group in [32, 64, 128] {
        let w = Int4Matrix::upload(gpu, &RandomWeights::new(13, group).int4(n, k));
        let x = random_f32(gpu, [1, k], 1);
        let ms = kernel_ms(gpu, o.repeats, || int4_matvec(gpu, x.clone(), &w).map(drop))?;
        let bytes = int4_bytes(n, k, group);
        out.push(json!({
            "group": group,
            "bits_per_weight": round(8.0 * bytes as f64 / (n * k) as f64),
            "rel_l2_pct_gaussian": round(100.0 * error(&gaussian, group)?),
            "rel_l2_pct_heavy_tailed": round(100.0 * error(&heavy, group)?),
            "matvec_shape": [n, k], "matvec_ms": round(ms), "matvec_gb_s": round(bytes as f64 / (ms * 1e6)),
            "matvec_vs_copy": round(bytes as f64 / (ms * 1e6) / copy_gbs),
        }));
    }
    Ok(out)
}

/// The int4 matvec kernel's work split and reduction (shared memory; subgroups where the
/// device has them), measured on the model's largest decoder matrix, its most frequent one and
/// its smallest (the hardest to keep enough loads in flight for): the data behind
/// `MatvecShape::DEFAULT` and the choice of reduction.
fn bench_matvec_shapes(gpu: &Gpu, o: &BenchOptions, matrices: &[(usize, usize)], copy_gbs: f64) -> Result<Vec<Value>> {
    use crate::kernels::int4_matvec::{MatvecShape, int4_matvec_variant};
    let mut out = Vec::new();
    for &(n, k) in matrices {
        let w = Int4Matrix::upload(gpu, &RandomWeights::new(17, o.group).int4(n, k));
        let x = random_f32(gpu, [1, k], 1);
        let bytes = int4_bytes(n, k, o.group) as f64;
        for subgroups in reductions(gpu) {
            for shape in MatvecShape::CANDIDATES {
                let ms =
                    kernel_ms(gpu, o.repeats, || int4_matvec_variant(gpu, x.clone(), &w, shape, subgroups).map(drop))?;
                out.push(json!({
                    "shape": [n, k], "workgroup": shape.workgroup, "outputs": shape.outputs, "unroll": shape.unroll, "stage_x": shape.stage_x, "subgroups": subgroups,
                    "default": shape == MatvecShape::DEFAULT && subgroups == gpu.capabilities().subgroups,
                    "ms": round(ms), "gb_s": round(bytes / (ms * 1e6)), "vs_copy": round(bytes / (ms * 1e6) / copy_gbs),
                }));
            }
        }
    }
    Ok(out)
}

/// The matvec reductions the device runs: shared memory, and subgroups where it has them.
fn reductions(gpu: &Gpu) -> Vec<bool> {
    if gpu.capabilities().subgroups { vec![false, true] } else { vec![false] }
}

/// A photo-sized gradient: the bench needs no files.
fn synthetic_views() -> Result<Views> {
    let (w, h) = (640, 480);
    let rgb: Vec<u8> =
        (0..w * h).flat_map(|i| [(i % w * 255 / w) as u8, (i / w * 255 / h) as u8, ((i * 7) % 251) as u8]).collect();
    Views::from_rgb(&rgb, w, h)
}

/// One image question end to end: tiles, question-guided vision, prefill, `decode_tokens`
/// greedy steps. Times are GPU-complete (each phase ends in a sync or a read-back).
fn bench_question(model: &FusionModel, tokenizer: &Tokenizer, views: &Views, o: &BenchOptions) -> Result<Value> {
    let gpu = model.gpu();
    let vision = VisionOptions { latents: model.config.default_latents(), reduced_side: None };
    let prompt = tokenizer.image_prompt(QUESTION, None)?;
    let phases = |cache: &mut crate::model::KvCache| -> Result<(f64, f64, f64, usize, u32)> {
        let t0 = now_ms();
        let context = model.encode_image(views)?;
        pollster::block_on(gpu.sync())?;
        let t1 = now_ms();
        let embedded = model.embed_prompt(&prompt, Some((views, &context)), vision, cache, None)?;
        pollster::block_on(gpu.sync())?;
        let t2 = now_ms();
        // Greedy, as the engine picks (the argmax on the GPU, 8 bytes read back).
        let next = pick(gpu, model.run_decoder(embedded, cache, None)?)?;
        Ok((t1 - t0, t2 - t1, now_ms() - t2, cache.len(), next))
    };
    // Warm-up: compiles every pipeline once, the decode step's included (its first step also
    // makes the model's first recording). A user waits for this once per model.
    let mut warm = model.new_cache();
    let next = phases(&mut warm)?.4;
    let first_step = now_ms();
    let next = pick(gpu, model.decode(next, &mut warm)?)?;
    let first_decode_step_ms = now_ms() - first_step;
    pick(gpu, model.decode(next, &mut warm)?)?;
    drop(warm);
    let mut cache = model.new_cache();
    let (tiles_ms, vision_ms, prefill_ms, prompt_len, first) = phases(&mut cache)?;
    let steps = o.decode_tokens.min(model.config.max_context() - prompt_len - 1).max(1);
    // As the engine decodes greedily: each step queued on the GPU's pick, before the CPU has
    // read that pick back. The last step's read ends the time.
    let start = now_ms();
    std::hint::black_box(pollster::block_on(model.greedy_tokens(first, steps, &mut cache))?);
    let decode_ms = (now_ms() - start) / steps as f64;
    // The same positions again, each step launched once the CPU has the last token (the
    // engine's way before it decoded ahead).
    cache.truncate(prompt_len);
    let start = now_ms();
    let mut next = first;
    for _ in 0..steps {
        next = pick(gpu, model.decode(next, &mut cache)?)?;
    }
    let waiting_ms = (now_ms() - start) / steps as f64;
    Ok(json!({
        "prompt_tokens": prompt_len,
        "tiles_ms": round(tiles_ms), "vision_ms": round(vision_ms), "prefill_ms": round(prefill_ms),
        "prefill_tok_s": round(prompt_len as f64 / prefill_ms * 1e3),
        "time_to_first_token_ms": round(tiles_ms + vision_ms + prefill_ms),
        "time_to_first_token_photo_cached_ms": round(vision_ms + prefill_ms),
        "decode_steps": steps, "decode_ms_per_token": round(decode_ms), "decode_tok_s": round(1e3 / decode_ms),
        "decode_reading_each_token_first_tok_s": round(1e3 / waiting_ms),
        "first_decode_step_ms": round(first_decode_step_ms),
        // "recorded" when the steps replayed a recording (model/decode_graph.rs; the average
        // includes making this answer's), else why not.
        "decode_graph": cache.decode_path(),
    }))
}

/// GPU memory once a model is loaded: its weights (the persistent pool), all the allocations in
/// use, and what the allocator holds for them (bytes).
fn memory_after_load(gpu: &Gpu) -> Value {
    let (in_use, reserved) = gpu.memory();
    json!({"weights": gpu.persistent_bytes(), "in_use": in_use, "reserved": reserved})
}

/// The greedy pick, as the engine makes it: the argmax on the GPU, 8 bytes read back. On a
/// device that runs nothing (`Gpu::noop`) those bytes are whatever the buffer held: the read is
/// made, its cost being the CPU's, and token 0 goes on.
fn pick(gpu: &Gpu, logits: Tensor<1>) -> Result<u32> {
    let id = pollster::block_on(argmax(gpu, logits))?;
    Ok(if gpu.runs_kernels() { id } else { 0 })
}

/// What issuing each phase costs the CPU: the same model on a device that runs nothing
/// (`Gpu::noop`), so every figure is CPU time (cubecl, wgpu, our code) and none is GPU time.
/// A decode step's is the floor of its time on any GPU driven from this CPU (the GPU can work
/// while the CPU issues, but not sooner than it is issued), and the gap between a GPU's figure
/// and this one is the GPU's. `decode_*_us_per_token` include reading the pick back (the
/// round trip, not a transfer), and exclude the one-time warm-up. A phase that allocates reads
/// high: a noop buffer is host memory, zero-filled when made (a new KV cache's hundreds of MB).
fn bench_cpu_side(host: &Gpu, o: &BenchOptions, shapes: Shapes) -> Result<Value> {
    let mut source = RandomModel::new(&shapes.spec(), o.group)?;
    let tokenizer = Tokenizer::from_bytes(source.tokenizer.to_string().as_bytes(), source.config.model_type)?;
    let views = synthetic_views()?;
    let model = FusionModel::from_source(
        source.config.clone(),
        &source.vision.clone(),
        &mut source,
        host,
        WeightFormat::Int4 { group: o.group },
    )?;
    let memory = memory_after_load(host);
    model.set_decode_graphs(true);
    let recorded = bench_question(&model, &tokenizer, &views, o)?;
    model.set_decode_graphs(false);
    let launched = bench_question(&model, &tokenizer, &views, o)?;
    let per_token_us = |v: &Value| v["decode_ms_per_token"].as_f64().map(|ms| round(ms * 1e3));
    let reading_each_us =
        |v: &Value| v["decode_reading_each_token_first_tok_s"].as_f64().map(|tok_s| round(1e6 / tok_s));
    let figures = json!({
        "device": host.adapter_name(),
        "decode_recorded_us_per_token": per_token_us(&recorded),
        "decode_recorded_path": recorded["decode_graph"],
        "decode_recorded_reading_each_token_first_us_per_token": reading_each_us(&recorded),
        "decode_launched_us_per_token": per_token_us(&launched),
        "decode_launched_reading_each_token_first_us_per_token": reading_each_us(&launched),
        "decode_ceiling_tok_s": recorded["decode_tok_s"],
        "tiles_ms": recorded["tiles_ms"], "vision_ms": recorded["vision_ms"], "prefill_ms": recorded["prefill_ms"],
        "first_decode_step_ms": recorded["first_decode_step_ms"],
        "memory_after_load": memory,
    });
    Ok(figures)
}

/// A greedy decode step's pick from `vocab` logits already on the GPU, what a user waits for
/// between two steps (wall clock): the argmax on the GPU with 8 bytes read back, against
/// reading all the logits back and taking the argmax on the CPU (as the engine did before).
fn bench_greedy_pick(gpu: &Gpu, o: &BenchOptions, vocab: usize) -> Result<Value> {
    let logits = random_f32(gpu, [1, vocab], 11).reshape([vocab]);
    let on_gpu = time_ms(gpu, o.repeats, || {
        pollster::block_on(argmax(gpu, logits.clone())).map(|id| _ = std::hint::black_box(id))
    })?;
    let on_cpu = time_ms(gpu, o.repeats, || {
        pollster::block_on(read_f32(logits.clone())).map(|l| _ = std::hint::black_box(crate::generate::argmax(&l)))
    })?;
    Ok(
        json!({"vocab": vocab, "gpu_argmax_us": round(on_gpu * 1e3), "read_back_and_cpu_argmax_us": round(on_cpu * 1e3), "speedup": round(on_cpu / on_gpu)}),
    )
}

/// One model's figures, most wanted first (what changed since the last GPU measurement before
/// what did not), each saved as soon as measured.
fn bench_model(gpu: &Gpu, host: &Gpu, o: &BenchOptions, copy_gbs: f64, report: &mut ModelReport) -> Result<()> {
    let shapes = report.shapes;
    let mut source = RandomModel::new(&shapes.spec(), o.group)?;
    let config = source.config.clone();
    let tokenizer = Tokenizer::from_bytes(source.tokenizer.to_string().as_bytes(), config.model_type)?;
    let views = synthetic_views()?;
    let linears = decoder_linears(&source);
    let largest = linears.iter().map(|l| l.0).max_by_key(|&(n, k)| n * k).unwrap_or((1, 32));
    let most_frequent = linears.iter().max_by_key(|l| (l.1, l.0.0 * l.0.1)).map_or((1, 32), |l| l.0);
    let smallest = linears.iter().map(|l| l.0).min_by_key(|&(n, k)| n * k).unwrap_or((1, 32));
    let (d, h, kv, hd) = (config.hidden_size, config.num_attention_heads, config.kv_heads(), config.head_dim());
    report.add("decoder", json!({"hidden": d, "layers": config.num_hidden_layers, "heads": h, "kv_heads": kv, "head_dim": hd, "intermediate": config.intermediate_size, "vocab": config.vocab_size}))?;

    let load = now_ms();
    let mut model = FusionModel::from_source(
        config.clone(),
        &source.vision.clone(),
        &mut source,
        gpu,
        WeightFormat::Int4 { group: o.group },
    )?;
    pollster::block_on(gpu.sync())?;
    report.add("load_ms", json!(round(now_ms() - load)))?;
    report.add("memory_after_load", memory_after_load(gpu))?;
    model.set_decode_graphs(true);
    let fused = bench_question(&model, &tokenizer, &views, o)?;

    // The decode roofline: every int4 weight (scales included) and the KV cache read once per token.
    let prompt = fused["prompt_tokens"].as_u64().unwrap_or(0) as usize;
    let context = prompt + o.decode_tokens / 2;
    let weight_bytes: usize = linears.iter().map(|&((n, k), c)| c * int4_bytes(n, k, o.group)).sum();
    let kv_bytes = config.num_hidden_layers * 2 * kv * hd * context * 4;
    let roofline = copy_gbs * 1e9 / (weight_bytes + kv_bytes) as f64;
    let decode = fused["decode_tok_s"].as_f64().unwrap_or(0.0);
    report.add("int4_fused", fused)?;
    report.add("decode_bytes_per_token", json!(weight_bytes + kv_bytes))?;
    report.add("decode_roofline_tok_s", json!(round(roofline)))?;
    report.add("decode_vs_roofline", json!(round(decode / roofline)))?;
    model.set_decode_graphs(false);
    let launched = bench_question(&model, &tokenizer, &views, o)?;
    report.add("int4_fused_launched_decode_tok_s", launched["decode_tok_s"].clone())?;

    let (c, tower_heads) = (source.vision.hidden_size, source.vision.num_attention_heads);
    let tower_rows = (384 / source.vision.patch_size).pow(2);
    report.add(
        "attention",
        json!(bench_attention(
            gpu,
            o,
            &[
                ("decode", (h, kv, 1, context, hd), Mask::Causal),
                ("prefill", (h, kv, prompt, prompt, hd), Mask::Causal),
                ("vision", (tower_heads, tower_heads, tower_rows, tower_rows, c / tower_heads), Mask::Full),
            ],
            copy_gbs
        )?),
    )?;
    report.add("matvec_shapes", json!(bench_matvec_shapes(gpu, o, &[largest, most_frequent, smallest], copy_gbs)?))?;
    report.add("linears", json!(bench_linears(gpu, o, &linears, prompt, copy_gbs)?))?;
    let tower_mlp =
        source.shapes.get(&format!("{}.weight", crate::weights::vision_layer(0, "mlp.fc1"))).map_or(4 * c, |s| s[0]);
    report.add(
        "gemm_splits",
        json!(bench_gemm_splits(
            gpu,
            o,
            &[
                ("tower attention output", tower_rows, (c, c)),
                ("tower fc2", tower_rows, (c, tower_mlp)),
                ("32-token follow-up, attention output", 32, (d, d)),
                ("32-token follow-up, down", 32, (d, config.intermediate_size)),
            ]
        )?),
    )?;
    report.add("norm_prologue", bench_norm_prologue(gpu, o, ((h + 2 * kv) * hd, d), config.rms_norm_eps)?)?;
    report.add("swiglu_epilogue", bench_swiglu_epilogue(gpu, o, (2 * config.intermediate_size, d))?)?;
    report.add("greedy_pick", bench_greedy_pick(gpu, o, config.vocab_size)?)?;
    model.set_kernels(Kernels::Stock);
    report.add("int4_burn_attention", bench_question(&model, &tokenizer, &views, o)?)?;
    drop(model);
    report.add("cpu_side", bench_cpu_side(host, o, shapes)?)?;
    report.add("group_sizes", json!(bench_group_sizes(gpu, o, largest, copy_gbs)?))?;
    if o.f32_model {
        let mut source = RandomModel::new(&shapes.spec(), o.group)?;
        let mut model =
            FusionModel::from_source(config, &source.vision.clone(), &mut source, gpu, WeightFormat::F32)
                .map_err(|e| Error::invalid("bench", format!("the f32 model for the stock-matmul comparison: {e}")))?;
        model.set_kernels(Kernels::Stock);
        report.add("f32_burn_matmul_and_attention", bench_question(&model, &tokenizer, &views, o)?)?;
    }
    report.add("finished", json!(true))
}
