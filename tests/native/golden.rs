//! The model against golden fixtures from the original reference implementation
//! (`tests/fixtures/tiny-{phi,llama}`): every stage separately (vision hidden states,
//! connector, image tokens, global grid, pooled latents and context, the assembled sequence,
//! each decoder layer, each interaction), then 8 greedy steps with their logits; and each
//! fixture converted to int4, against its dequantised and its original weights.
//! Tolerance: relative L2 < 1e-4 in f32, exact ids (the fixtures' README).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fusion::config::Backbone;
use fusion::generate::argmax;
use fusion::image::{Views, views_u8};
use fusion::model::{FusionModel, Kernels, Prompt, Trace, VisionOptions, WeightFormat};
use fusion::quant::rel_l2;
use safetensors::{Dtype, SafeTensors};

const TOL: f64 = 1e-4;

fn fixture_dir(name: &str) -> PathBuf {
    let dir = crate::common::test_file("fixtures").join(name);
    assert!(dir.join("config.json").exists(), "golden fixture {} is missing", dir.display());
    dir
}

/// A copy of fixture `dir` with a tokenizer, which `fusion convert` requires (the fixtures
/// carry weights and reference outputs only, and stay as they were made).
fn with_tokenizer(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() { copy(&path, &target) } else { std::fs::copy(&path, &target).map(drop).unwrap() }
        }
    }
    let name = dir.file_name().unwrap().to_string_lossy();
    let copied = crate::common::scratch(&format!("checkpoint-{name}"));
    copy(dir, &copied);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let backbone = if config["model_type"] == "fusion_llama" { Backbone::Llama } else { Backbone::Phi };
    std::fs::write(copied.join("tokenizer.json"), fusion::testing::tokenizer_json(backbone).to_string()).unwrap();
    copied
}

struct Fixture {
    bytes: HashMap<String, Vec<u8>>,
}

impl Fixture {
    fn open(dir: &Path) -> Self {
        let bytes = ["inputs", "outputs"]
            .into_iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(format!("{f}.safetensors"))).unwrap()))
            .collect();
        Self { bytes }
    }

    fn tensor(&self, file: &str, name: &str) -> (Dtype, Vec<usize>, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.bytes[file]).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("{file}.safetensors has no `{name}`"));
        (t.dtype(), t.shape().to_vec(), t.data().to_vec())
    }

    fn f32(&self, name: &str) -> Vec<f32> {
        let (dtype, _, data) = self.tensor("outputs", name);
        assert_eq!(dtype, Dtype::F32);
        data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn i64(&self, file: &str, name: &str) -> Vec<i64> {
        let (dtype, _, data) = self.tensor(file, name);
        assert_eq!(dtype, Dtype::I64);
        data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
    }
}

fn check(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, the reference has {}", got.len(), want.len());
    let err = rel_l2(got, want);
    assert!(err < TOL, "{what}: rel L2 {err:e} ≥ {TOL:e}");
}

fn read(trace: &Trace, name: &str) -> Vec<f32> {
    let t = trace.get(name).unwrap_or_else(|| panic!("the forward pass recorded no `{name}`")).clone();
    pollster::block_on(fusion::gpu::read_f32(t)).unwrap()
}

fn golden(name: &str, vision_layers: &[usize], attention: Kernels) {
    let dir = fixture_dir(name);
    let fx = Fixture::open(&dir);
    let mut model = FusionModel::load(&dir, crate::common::gpu(), WeightFormat::F32).unwrap();
    model.set_kernels(attention);

    let (_, _, views) = fx.tensor("inputs", "views_rgb_u8");
    let views = Views::from_views_u8(&views);
    let prompt = Prompt {
        ids: fx.i64("inputs", "input_ids"),
        instructs: fx.i64("inputs", "instructs").into_iter().map(|i| i as u32).collect(),
    };
    let latents = model.config.default_latents();

    let image = model.encode_image(&views).unwrap();
    let mut trace = Trace::default();
    let mut cache = model.new_cache();
    let vision = VisionOptions { latents, reduced_side: None };
    let logits = model.prefill(&prompt, Some((&views, &image)), vision, &mut cache, Some(&mut trace)).unwrap();

    // The tower, stage by stage.
    check(
        "instruct_states",
        &read(&trace, "vision.question_view.instruct_states"),
        &fx.f32("vision.question_view.instruct_states"),
    );
    for &i in vision_layers {
        check(
            &format!("vision hidden {i}"),
            &read(&trace, &format!("vision.hidden_{i}")),
            &fx.f32(&format!("vision.question_view.hidden_{i}")),
        );
    }
    check(
        "connector",
        &read(&trace, "vision.question_view.connector_out"),
        &fx.f32("vision.question_view.connector_out"),
    );
    let tokens = read(&trace, "vision.image_tokens");
    check("image tokens (projector rows 0..N)", &tokens, &fx.f32("vision.question_view.projector_out")[..tokens.len()]);
    // Tiles, pooling and the assembled sequence.
    for t in ["global_grid", "latent0", "ctx", "inputs_embeds"] {
        check(t, &read(&trace, t), &fx.f32(t));
    }
    // The decoder and the interaction layers, separately.
    for l in 0..model.config.num_hidden_layers {
        let t = format!("prefill.layer_{l}.out");
        check(&t, &read(&trace, &t), &fx.f32(&t));
    }
    for k in 0..model.config.num_of_vision_sampler_layers {
        for part in ["query_state", "latents_in", "latents_out"] {
            let t = format!("interaction_{k}.{part}");
            check(&t, &read(&trace, &t), &fx.f32(&t));
        }
    }
    check("final norm", &read(&trace, "prefill.final_norm_last"), &fx.f32("prefill.final_norm_last"));
    let first = pollster::block_on(fusion::gpu::read_f32(logits)).unwrap();
    check("prefill logits", &first, &fx.f32("prefill.logits_last"));

    // Greedy decoding with the KV cache: logits at every step and the exact ids.
    let want_logits = fx.f32("generate.logits");
    let vocab = first.len();
    let want_ids = fx.i64("outputs", "generate.token_ids");
    let mut step_logits = first;
    let mut ids = Vec::new();
    for step in 0..want_ids.len() {
        check(&format!("step {step} logits"), &step_logits, &want_logits[step * vocab..(step + 1) * vocab]);
        let next = argmax(&step_logits);
        ids.push(next as i64);
        if step + 1 < want_ids.len() {
            step_logits = pollster::block_on(fusion::gpu::read_f32(model.decode(next, &mut cache).unwrap())).unwrap();
        }
    }
    assert_eq!(ids, want_ids, "greedy tokens");
}

#[test]
fn tiny_phi_matches_the_reference() {
    golden("tiny-phi", &[0, 1, 13, 14, 26], Kernels::Fused);
}

#[test]
fn tiny_llama_matches_the_reference() {
    golden("tiny-llama", &[0, 1, 19, 20, 38, 39], Kernels::Fused);
}

/// burn's stock attention, which `fusion bench` compares the kernel against, is right too.
#[test]
fn tiny_llama_with_stock_attention_matches_the_reference() {
    golden("tiny-llama", &[0, 1, 19, 20, 38, 39], Kernels::Stock);
}

#[test]
fn preprocessing_matches_pillow_exactly() {
    let fx = Fixture::open(&fixture_dir("tiny-phi"));
    let (_, shape, rgb) = fx.tensor("inputs", "image_rgb_u8");
    let (_, _, want) = fx.tensor("inputs", "views_rgb_u8");
    let got = views_u8(&rgb, shape[1], shape[0]).unwrap();
    let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(diff, 0, "{diff} of {} view bytes differ from Pillow's", want.len());
}

/// Prefill and `steps - 1` greedy decode steps: each step's logits, and the ids `pick` chose.
/// `pick` is given the step and the logits; a model compared with another follows the other's ids.
fn greedy_logits(
    model: &FusionModel,
    fx: &Fixture,
    steps: usize,
    mut pick: impl FnMut(usize, &[f32]) -> u32,
) -> Vec<Vec<f32>> {
    let (_, _, views) = fx.tensor("inputs", "views_rgb_u8");
    let views = Views::from_views_u8(&views);
    let prompt = Prompt {
        ids: fx.i64("inputs", "input_ids"),
        instructs: fx.i64("inputs", "instructs").into_iter().map(|i| i as u32).collect(),
    };
    let image = model.encode_image(&views).unwrap();
    let vision = VisionOptions { latents: model.config.default_latents(), reduced_side: None };
    let mut cache = model.new_cache();
    let mut logits = vec![
        pollster::block_on(fusion::gpu::read_f32(
            model.prefill(&prompt, Some((&views, &image)), vision, &mut cache, None).unwrap(),
        ))
        .unwrap(),
    ];
    while logits.len() < steps {
        let next = pick(logits.len() - 1, logits.last().unwrap());
        logits.push(pollster::block_on(fusion::gpu::read_f32(model.decode(next, &mut cache).unwrap())).unwrap());
    }
    logits
}

/// Each fixture converted to int4 (small shards, so tensors span shards), three ways: through
/// our int4 kernels; read back as f32 (dequantised on the host, burn's matmul); and the original
/// f32 weights. The int4 kernels must give the dequantised weights' greedy tokens and, step by
/// step, their logits; against the original weights the int4 error is a property of the
/// weights, not a bug, bounded only to catch a broken quantiser.
fn int4_conversion_stays_close_to_f32(name: &str) {
    use fusion::convert::{ConvertOptions, convert};
    const STEPS: usize = 8;
    let dir = fixture_dir(name);
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("int4-{name}"));
    let options = ConvertOptions { group: 32, max_shard_bytes: 64 << 10 };
    let manifest = convert(&with_tokenizer(&dir), &out, &options).unwrap();
    assert!(
        manifest.shards.len() > 3 && manifest.tensors.iter().any(|t| t.data.len() > 1),
        "small shards must split tensors"
    );
    let fx = Fixture::open(&dir);

    // The device's own kernels (f16 GEMMs on lavapipe) and WebGPU's baseline (SwiftShader's).
    let mut int4_prefill = Vec::new();
    for gpu in [crate::common::gpu().clone(), crate::common::gpu().clone().baseline()] {
        let mut ids = Vec::new();
        let int4 = greedy_logits(
            &FusionModel::load(&out, &gpu, WeightFormat::Int4 { group: 32 }).unwrap(),
            &fx,
            STEPS,
            |_, l| {
                ids.push(argmax(l));
                *ids.last().unwrap()
            },
        );
        ids.push(argmax(&int4[STEPS - 1]));
        let mut dequantized_ids = Vec::new();
        let dequantized =
            greedy_logits(&FusionModel::load(&out, &gpu, WeightFormat::F32).unwrap(), &fx, STEPS, |step, l| {
                dequantized_ids.push(argmax(l));
                ids[step]
            });
        dequantized_ids.push(argmax(&dequantized[STEPS - 1]));
        // f32 kernels: measured 1.3e-7 to 4.4e-7 at every step, bound 1e-5. Where the device has
        // shader-f16 (lavapipe does) the prefill GEMMs multiply in f16, rounding x and the
        // weights of every linear layer: measured 1.2e-3 (Phi) and 1.3e-3 (LLaMA) through the
        // tower, projectors and decoder, far below int4's own error (INT4_LOGITS_TOL); the decode
        // steps' matvecs are f32, but read the cache that prefill wrote: 3e-4 to 6e-4. Bound 5e-3.
        let f16 = gpu.capabilities().f16;
        let bound = if f16 { 5e-3 } else { 1e-5 };
        for (step, (a, b)) in int4.iter().zip(&dequantized).enumerate() {
            let err = rel_l2(a, b);
            assert!(
                err < bound,
                "{name} (f16: {f16}): step {step}: int4 kernels vs the dequantised weights: rel L2 {err:e} (bound {bound:e})"
            );
        }
        assert_eq!(
            ids, dequantized_ids,
            "{name} (f16: {f16}): greedy tokens of the int4 kernels and of the dequantised weights"
        );
        int4_prefill = int4.into_iter().next().unwrap();
    }

    let f32_logits = greedy_logits(
        &FusionModel::load(&dir, crate::common::gpu(), WeightFormat::F32).unwrap(),
        &fx,
        1,
        |_, _| unreachable!(),
    );
    let err = rel_l2(&int4_prefill, &f32_logits[0]);
    println!("{name}: int4 (group 32) vs f32 prefill logits: rel L2 {err:.4}");
    assert!(err > 0.0 && err < INT4_LOGITS_TOL, "{name}: int4 vs f32 prefill logits: rel L2 {err}");
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn tiny_phi_in_int4_stays_close_to_f32() {
    int4_conversion_stays_close_to_f32("tiny-phi");
}

#[test]
fn tiny_llama_in_int4_stays_close_to_f32() {
    int4_conversion_stays_close_to_f32("tiny-llama");
}

/// Bound on int4-vs-f32 logits of the tiny fixtures: measured 0.30 with group 32, both. Unit-gain
/// random weights through 26–39 tower and 5–6 decoder layers are the worst case for 4 bits; this
/// bound only catches a broken quantiser (a wrong scale or nibble order gives ≈ 1).
const INT4_LOGITS_TOL: f64 = 0.4;
