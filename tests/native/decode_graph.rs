//! Decode through a recorded step (`model::decode_graph`) against launching every kernel each
//! step: the same logits, bit for bit, across the cache's growth (which needs a new recording),
//! for both backbones, natively (lavapipe in CI; the browser's model tests run it on WebGPU);
//! and a recording refused once its window was open, which costs one answer and nothing else.
//! Also: weights loaded so that a recording never has to move them.

use crate::common::chat::{ask, engine, options, photo};
use crate::common::gpu;
use fusion::config::Backbone;
use fusion::gpu::Gpu;
use fusion::kernels::argmax::argmax;
use fusion::model::{FusionModel, Prompt, VisionOptions, WeightFormat};
use fusion::testing::{DecoderDims, RandomModel, TinySpec};

/// Past the cache's first capacity (256 positions), so one step re-records.
const STEPS: usize = 270;

/// The tiny model of a backbone with random int4 weights, on `gpu`.
fn tiny_model(backbone: Backbone, gpu: &Gpu) -> FusionModel {
    let mut source = RandomModel::new(&TinySpec::new(backbone), 32).unwrap();
    let (config, vision) = (source.config.clone(), source.vision.clone());
    FusionModel::from_source(config, &vision, &mut source, gpu, WeightFormat::Int4 { group: 32 }).unwrap()
}

fn logits_of(model: &FusionModel, tokens: &[u32]) -> (Vec<Vec<f32>>, String) {
    let mut cache = model.new_cache();
    let logits = tokens
        .iter()
        .map(|&t| pollster::block_on(fusion::gpu::read_f32(model.decode(t, &mut cache).unwrap())).unwrap())
        .collect();
    (logits, cache.decode_path().to_owned())
}

#[test]
fn recorded_decode_steps_equal_launched_ones() {
    for backbone in [Backbone::Phi, Backbone::Llama] {
        let model = tiny_model(backbone, gpu());
        // Off by default natively (`Gpu::record_decode_steps`). The only test recording on this
        // binary's shared device: the others record on devices of their own.
        model.set_decode_graphs(true);
        let vocab = model.config.vocab_size as u64;
        let tokens: Vec<u32> = (0..STEPS as u64).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();
        let (recorded, path) = logits_of(&model, &tokens);
        assert_eq!(path, "recorded", "{backbone:?}: the decode step was not recorded");
        model.set_decode_graphs(false);
        let (launched, path) = logits_of(&model, &tokens);
        assert_eq!(path, "launched", "{backbone:?}");
        for (i, (a, b)) in recorded.iter().zip(&launched).enumerate() {
            assert!(a == b, "{backbone:?}: step {i}: recorded and launched logits differ");
        }
    }
}

/// `steps` greedy tokens after `first`, each step launched once its token is read back.
fn greedy_tokens_read_each(model: &FusionModel, first: u32, steps: usize) -> Vec<u32> {
    let mut cache = model.new_cache();
    let mut t = first;
    (0..steps)
        .map(|_| {
            t = pollster::block_on(argmax(model.gpu(), model.decode(t, &mut cache).unwrap())).unwrap();
            t
        })
        .collect()
}

#[test]
fn steps_queued_on_the_gpus_pick_decode_the_tokens_read_back() {
    // f32 embedding tables here (the converted models' f16 ones: tests/cli.rs, the browser's).
    for backbone in [Backbone::Phi, Backbone::Llama] {
        let gpu = pollster::block_on(gpu().renew()).unwrap();
        let model = tiny_model(backbone, &gpu);
        for recorded in [false, true] {
            model.set_decode_graphs(recorded);
            let want = greedy_tokens_read_each(&model, 7, STEPS);
            let mut cache = model.new_cache();
            assert_eq!(
                pollster::block_on(model.greedy_tokens(7, STEPS, &mut cache)).unwrap(),
                want,
                "{backbone:?}, recorded: {recorded}"
            );
            assert_eq!(cache.len(), STEPS);
            // Not one token repeated throughout: the steps read their own picks.
            assert!(want.windows(2).any(|w| w[0] != w[1]), "{backbone:?}: {want:?}");
        }
    }
}

#[test]
fn a_refused_recording_fails_one_answer_and_the_conversation_goes_on() {
    // A device of its own: no other test's recording shares it.
    let gpu = pollster::block_on(gpu().renew()).unwrap().record_decode_steps(true);
    let engine = engine(&gpu, "refused-recording", 2000);
    let photo = photo(&engine);
    let o = options(6);
    let questions = ["What is in this photo?", "And the colours?"];
    let mut expected = engine.new_conversation();
    let answers: Vec<String> = questions.iter().map(|q| ask(&engine, &mut expected, &photo, q, &o).unwrap()).collect();
    assert_eq!(expected.decode_path(), "recorded");

    // cubecl refuses the recording when its window closes: the buffers the recorded launches
    // were given, the KV cache included, are tainted, so the answer cannot go on.
    gpu.spoil_next_recording();
    let mut c = engine.new_conversation();
    let e = ask(&engine, &mut c, &photo, questions[0], &o).unwrap_err().to_string();
    assert!(e.contains("recording a decode step: stop") && e.contains("rebuilt at its next question"), "{e}");
    assert!(c.decode_path().starts_with("recording a decode step: stop"), "{}", c.decode_path());
    assert!(c.questions().is_empty(), "a failed question is not a turn");
    // Asked again, and followed up: the answers of a conversation that never failed, with every
    // kernel launched from now on.
    for (q, a) in questions.iter().zip(&answers) {
        assert_eq!(&ask(&engine, &mut c, &photo, q, &o).unwrap(), a);
    }
    assert_eq!(c.decode_path(), "launched");
    assert_eq!(c.questions().len(), 2);
}

#[test]
fn models_on_two_threads_record_on_one_device() {
    // Each thread records a fresh cache's decode step again and again, as two engines of one
    // app would (recordings on one device take turns: `Gpu::recording_alone`).
    let gpu = pollster::block_on(gpu().renew()).unwrap().record_decode_steps(true);
    std::thread::scope(|threads| {
        for backbone in [Backbone::Phi, Backbone::Llama] {
            let gpu = gpu.clone();
            threads.spawn(move || {
                let model = tiny_model(backbone, &gpu);
                let vision = VisionOptions { latents: 0, reduced_side: None };
                for round in 0..24 {
                    // Longer and longer prompts, so each thread's memory pools keep growing
                    // (a growth leaves outdated pages, which a prepare relocates).
                    let mut cache = model.new_cache();
                    let prompt = Prompt { ids: (0..5 + round * 30).map(|i| i % 50).collect(), instructs: Vec::new() };
                    model.prefill(&prompt, None, vision, &mut cache, None).unwrap();
                    for token in [1, 2] {
                        model.decode(token, &mut cache).unwrap_or_else(|e| panic!("{backbone:?}, round {round}: {e}"));
                    }
                    assert_eq!(cache.decode_path(), "recorded", "{backbone:?}, round {round}");
                }
            });
        }
    });
}

/// A model's weights fill the memory they reserve: each loads into an exact-fit buffer of its
/// own (`Gpu::persistent`), so no page is left "outdated" for the first recording to move.
/// Left to cubecl's pools they were carved from pages sized to the largest allocation so far
/// (11 % of the 3B's reserve was padding, 21 % of the 8B's; BENCHMARKS.md). Matrices of a few hundred KB (the
/// tiny model's would all fit the pools' small-allocation page), on a device of its own:
/// wgpu's noop, which runs nothing.
#[test]
fn weights_fill_the_memory_they_reserve() {
    for backbone in [Backbone::Phi, Backbone::Llama] {
        let gpu = Gpu::noop().unwrap();
        let ((in_use, reserved), persistent) = (gpu.memory(), gpu.persistent_bytes());
        let spec = TinySpec {
            decoder: DecoderDims { width: 512, heads: 8, kv_heads: 2, intermediate: 1536, layers: 5, head_dim: None },
            ..TinySpec::new(backbone)
        };
        let mut source = RandomModel::new(&spec, 32).unwrap();
        let (config, vision) = (source.config.clone(), source.vision.clone());
        let model =
            FusionModel::from_source(config, &vision, &mut source, &gpu, WeightFormat::Int4 { group: 32 }).unwrap();
        let (weights, held) = (gpu.memory().0 - in_use, gpu.memory().1 - reserved);
        let in_pool = gpu.persistent_bytes() - persistent;
        assert!(
            in_pool.abs_diff(weights) <= weights / 1000,
            "{backbone:?}: {in_pool} B of the {weights} B of weights are in the persistent pool"
        );
        assert!(held <= weights + weights / 100, "{backbone:?}: {weights} B of weights, {held} B more reserved");
        drop(model);
    }
}
