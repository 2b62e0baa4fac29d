//! A tiny LLaMA-backbone engine and the steps of a conversation with it about a sample photo,
//! for the conversation tests and the soak.

use fusion::Gpu;
use fusion::config::Backbone;
use fusion::engine::{AskOptions, Conversation, Engine, Photo};
use fusion::generate::SamplingOptions;
use fusion::image::Views;
use fusion::model::WeightFormat;
use fusion::testing::{TinySpec, write_tiny_checkpoint};
use serde_json::json;

/// A tiny int4 engine on `gpu` with a context of `context` positions.
pub fn engine(gpu: &Gpu, name: &str, context: usize) -> Engine {
    let dir = super::scratch(&format!("conversation-{name}"));
    let spec =
        TinySpec { config_overrides: json!({"tokenizer_model_max_length": context}), ..TinySpec::new(Backbone::Llama) };
    write_tiny_checkpoint(&dir, &spec).unwrap();
    Engine::load(&dir, gpu, WeightFormat::Int4 { group: 32 }).unwrap()
}

pub fn views() -> Views {
    let path = super::test_file("photos/waterview.jpg");
    let (rgb, w, h) = fusion::image::decode(&std::fs::read(path).unwrap()).unwrap();
    Views::from_rgb(&rgb, w, h).unwrap()
}

pub fn photo(engine: &Engine) -> Photo {
    engine.encode_photo(views()).unwrap()
}

pub fn options(max_new_tokens: usize) -> AskOptions {
    AskOptions { sampling: SamplingOptions { max_new_tokens, ..Default::default() }, ..Default::default() }
}

pub fn ask(engine: &Engine, c: &mut Conversation, photo: &Photo, q: &str, o: &AskOptions) -> fusion::Result<String> {
    pollster::block_on(engine.ask(c, Some(photo), q, o, |_| true)).map(|a| a.text)
}
