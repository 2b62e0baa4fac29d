//! The model against golden fixtures from the original reference implementation
//! (`shared/fixtures/tiny-{phi,llama}`): every stage separately (vision hidden states,
//! connector, image tokens, global grid, pooled latents and context, the assembled sequence,
//! each decoder layer, each interaction), then 8 greedy steps with their logits.
//! Tolerance: relative L2 < 1e-4 in f32, exact ids (the fixtures' README).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use fusion::image::{Views, views_u8};
use fusion::model::{Kernels, FusionModel, Prompt, Trace, VisionOptions, WeightFormat};
use fusion::quant::rel_l2;
use safetensors::{Dtype, SafeTensors};

const TOL: f64 = 1e-4;

fn fixture_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures").join(name);
    assert!(dir.join("config.json").exists(), "golden fixture {} is missing", dir.display());
    dir
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
    let mut model = FusionModel::load(&dir, common::gpu(), WeightFormat::F32).unwrap();
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
    check("instruct_states", &read(&trace, "vision.question_view.instruct_states"), &fx.f32("vision.question_view.instruct_states"));
    for &i in vision_layers {
        check(&format!("vision hidden {i}"), &read(&trace, &format!("vision.hidden_{i}")), &fx.f32(&format!("vision.question_view.hidden_{i}")));
    }
    check("connector", &read(&trace, "vision.question_view.connector_out"), &fx.f32("vision.question_view.connector_out"));
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
        let next = fusion::generate::Sampler::new(Default::default()).pick(&step_logits);
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

/// The same fixture converted to int4 (small shards, so tensors span shards) against the f32
/// model of this implementation: the int4 error is a property of the weights, not a bug.
#[test]
fn int4_conversion_stays_close_to_f32() {
    use fusion::convert::{ConvertOptions, convert};
    let dir = fixture_dir("tiny-phi");
    let out = std::env::temp_dir().join(format!("fusion-int4-{}", std::process::id()));
    let manifest = convert(&dir, &out, &ConvertOptions { group: 32, max_shard_bytes: 64 << 10 }).unwrap();
    assert!(manifest.shards.len() > 3 && manifest.tensors.iter().any(|t| t.data.len() > 1), "small shards must split tensors");

    let fx = Fixture::open(&dir);
    let (_, _, views) = fx.tensor("inputs", "views_rgb_u8");
    let views = Views::from_views_u8(&views);
    let prompt = Prompt { ids: fx.i64("inputs", "input_ids"), instructs: fx.i64("inputs", "instructs").into_iter().map(|i| i as u32).collect() };
    let logits = |model: &FusionModel| {
        let image = model.encode_image(&views).unwrap();
        let vision = VisionOptions { latents: model.config.default_latents(), reduced_side: None };
        let l = model.prefill(&prompt, Some((&views, &image)), vision, &mut model.new_cache(), None).unwrap();
        pollster::block_on(fusion::gpu::read_f32(l)).unwrap()
    };
    let f32_logits = logits(&FusionModel::load(&dir, common::gpu(), WeightFormat::F32).unwrap());
    let int4_logits = logits(&FusionModel::load(&out, common::gpu(), WeightFormat::Int4 { group: 32 }).unwrap());
    // The converted model read back as f32 (dequantised on the host, burn's matmul): our int4
    // kernels must reproduce exactly these weights' result.
    let dequantized_logits = logits(&FusionModel::load(&out, common::gpu(), WeightFormat::F32).unwrap());
    // f32 kernels: 1e-4. Where the device has shader-f16 (lavapipe does) the prefill GEMMs
    // multiply in f16, rounding x and the weights of every linear layer: measured 9.2e-4 through
    // the tower, projectors and decoder, far below int4's own error (INT4_LOGITS_TOL).
    let kernel_err = rel_l2(&int4_logits, &dequantized_logits);
    let bound = if common::gpu().capabilities().f16 { 5e-3 } else { 1e-4 };
    assert!(kernel_err < bound, "int4 kernels vs the dequantised weights: rel L2 {kernel_err:e}");
    let err = rel_l2(&int4_logits, &f32_logits);
    println!("int4 (group 32) vs f32 prefill logits: rel L2 {err:.4}");
    assert!(err > 0.0 && err < INT4_LOGITS_TOL, "rel L2 {err}");
    std::fs::remove_dir_all(out).ok();
}

/// Bound on int4-vs-f32 logits of the tiny fixtures: measured 0.30 with group 32. Unit-gain
/// random weights through 26 tower and 5 decoder layers are the worst case for 4 bits; this
/// bound only catches a broken quantiser (a wrong scale or nibble order gives ≈ 1).
const INT4_LOGITS_TOL: f64 = 0.4;
