//! Decode through a recorded step (`model::decode_graph`) against launching every kernel each
//! step: the same logits, bit for bit, across the cache's growth (which needs a new recording),
//! for both backbones, natively (lavapipe in CI; the browser's model tests run it on WebGPU).

mod common;

use common::gpu;
use fusion::config::Backbone;
use fusion::model::{FusionModel, WeightFormat};
use fusion::testing::{RandomModel, TinySpec};

/// Past the cache's first capacity (256 positions), so one step re-records.
const STEPS: usize = 270;

fn logits_of(model: &FusionModel, tokens: &[u32]) -> (Vec<Vec<f32>>, String) {
    let mut cache = model.new_cache();
    let logits = tokens.iter().map(|&t| pollster::block_on(fusion::gpu::read_f32(model.decode(t, &mut cache).unwrap())).unwrap()).collect();
    (logits, cache.decode_path().to_owned())
}

#[test]
fn recorded_decode_steps_equal_launched_ones() {
    for backbone in [Backbone::Phi, Backbone::Llama] {
        let spec = TinySpec::new(backbone);
        let mut source = RandomModel::new(&spec, 32).unwrap();
        let (config, vision) = (source.config.clone(), source.vision.clone());
        let mut model = FusionModel::from_source(config.clone(), &vision, &mut source, gpu(), WeightFormat::Int4 { group: 32 }).unwrap();
        // Off by default natively (`Gpu::record_decode_steps`); this binary is one test, one thread.
        model.set_decode_graphs(true);
        let vocab = config.vocab_size as u64;
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
