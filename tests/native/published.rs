//! The published repositories' layout (`TinySpec::published`: every key of the four models at
//! their layer counts, their configs and tokenizer files, tiny widths) with the tokenizers
//! they ship (the real ones of `tests/fixtures/tokenizers`): `fusion check` → `fusion convert`
//! → `fusion ask`, the prompt the reference builds, and each broken piece refused by `check`
//! and `convert` before anything is written, named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fusion::config::Backbone;
use fusion::engine::Engine;
use fusion::model::WeightFormat;
use fusion::testing::{TinySpec, write_tiny_checkpoint};

use crate::common::{scratch, test_file};

/// A published-layout checkpoint of `spec` in scratch folder `name`, with the real tokenizer.
fn checkpoint(name: &str, spec: &TinySpec) -> PathBuf {
    let dir = scratch(name);
    write_tiny_checkpoint(&dir, spec).unwrap();
    match spec.backbone {
        Backbone::Phi => {
            let real = test_file("fixtures/tokenizers/phi");
            for f in ["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"] {
                std::fs::copy(real.join(f), dir.join(f)).unwrap();
            }
        }
        Backbone::Llama => {
            std::fs::write(dir.join("tokenizer.json"), crate::tokenizers::llama_json().to_string()).unwrap()
        }
    }
    dir
}

fn fusion(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fusion")).args(args).args(paths).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// check → convert → check → ask (a text-only question; with `photo`, an image question too),
/// and the converted model's prompt is the reference's.
fn published_model_answers(backbone: Backbone, x: bool, keys: usize, photo: bool) {
    let spec = TinySpec::published(backbone, x);
    let repository = fusion::testing::published::repository(&spec);
    let src = checkpoint(&format!("published-{repository}"), &spec);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("model.safetensors.index.json")).unwrap()).unwrap();
    assert_eq!(index["weight_map"].as_object().unwrap().len(), keys, "every key the reference saves");
    assert!(!src.join("tokenizer.json").exists() || backbone == Backbone::Llama);

    let checked = fusion(&["check"], &[&src]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(text(&checked).contains(&format!("checkpoint: {repository} layout")), "{}", text(&checked));

    let out = src.with_file_name(format!("{}-int4", src.file_name().unwrap().to_string_lossy()));
    std::fs::remove_dir_all(&out).ok();
    let converted = fusion(&["convert"], &[&src, &out]);
    assert!(converted.status.success(), "{}", text(&converted));
    let checked = fusion(&["check"], &[&out]);
    assert!(checked.status.success() && text(&checked).contains("converted model"), "{}", text(&checked));

    // Loading reports each tensor as it reaches the GPU (what the CLI's bar shows): every one
    // but the tower's unused last norm (weight and bias), once each, in order.
    let mut reports = Vec::new();
    let format = WeightFormat::Int4 { group: 32 };
    let engine =
        Engine::load_reporting(&out, crate::common::gpu(), format, &mut |taken, total| reports.push((taken, total)))
            .unwrap();
    let expected: Vec<(usize, usize)> = (1..=keys - 2).map(|taken| (taken, keys)).collect();
    assert_eq!(reports, expected);

    // The prompt of the converted model: the reference's ids (made by transformers).
    let fixture = match backbone {
        Backbone::Phi => "phi/prompts.json",
        Backbone::Llama => "llama/prompts.json",
    };
    let case = crate::tokenizers::cases(fixture).into_iter().find(|c| c.kind == "image").unwrap();
    assert_eq!(engine.tokenizer.image_prompt(&case.question, case.system.as_deref()).unwrap().ids, case.ids);
    drop(engine);

    let ask = |question: &str, image: Option<&Path>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fusion"));
        command.args(["ask", "--int4", "--max-tokens", "2", "--model"]).arg(&out);
        if let Some(image) = image {
            command.arg("--image").arg(image);
        }
        command.arg(question).output().unwrap()
    };
    let answered = ask("Who are you?", None);
    assert!(answered.status.success() && text(&answered).contains("2 new tokens"), "{}", text(&answered));
    if photo {
        let answered = ask("What is in the photo?", Some(&test_file("photos/waterview.jpg")));
        assert!(answered.status.success() && text(&answered).contains("2 new tokens"), "{}", text(&answered));
    }
}

#[test]
fn fusion_phi_3b_as_published_answers() {
    published_model_answers(Backbone::Phi, false, 784, true);
}

#[test]
fn fusion_x_phi_3b_as_published_answers() {
    published_model_answers(Backbone::Phi, true, 992, false);
}

#[test]
fn fusion_llama_8b_as_published_answers() {
    published_model_answers(Backbone::Llama, false, 880, false);
}

#[test]
fn fusion_x_llama_8b_as_published_answers() {
    published_model_answers(Backbone::Llama, true, 1088, false);
}

/// A broken checkpoint: its name, what it is generated from, what is done to it, and what the
/// errors must name.
type Breakage<'a> = (&'a str, TinySpec, &'a dyn Fn(&Path), &'a [&'a str]);

/// A missing or broken piece: `fusion check` and `fusion convert` both fail, naming it, and the
/// conversion writes nothing.
#[test]
fn a_broken_checkpoint_is_refused_before_anything_is_written() {
    let spec = TinySpec::published(Backbone::Phi, false);
    let missing = "model.layers.7.mlp.down_proj.weight";
    let cases: [Breakage; 5] = [
        ("no-tokenizer", spec.clone(), &|d| std::fs::remove_file(d.join("tokenizer.model")).unwrap(), &["tokenizer"]),
        (
            "bad-tokenizer",
            spec.clone(),
            &|d| std::fs::write(d.join("tokenizer.model"), b"\x0a\xff\xff").unwrap(),
            &["tokenizer.model"],
        ),
        (
            "missing-tensor",
            TinySpec { omit: Some(missing.into()), ..spec.clone() },
            &|_| {},
            &["1 tensor(s) missing", missing],
        ),
        (
            "wrong-shape",
            TinySpec { config_overrides: serde_json::json!({"intermediate_size": 96}), ..spec.clone() },
            &|_| {},
            &["model.layers.0.mlp.gate_up_proj.weight: shape [256, 192], expected [192, 192]"],
        ),
        (
            "truncated-shard",
            spec.clone(),
            &|d| {
                let shard = d.join("model-00002-of-00002.safetensors");
                let len = std::fs::metadata(&shard).unwrap().len();
                std::fs::File::options().write(true).open(&shard).unwrap().set_len(len / 2).unwrap();
            },
            &["model-00002-of-00002.safetensors", "truncated"],
        ),
    ];
    for (name, spec, breakage, needles) in cases {
        let src = checkpoint(&format!("broken-{name}"), &spec);
        breakage(&src);
        let out = src.with_file_name(format!("broken-{name}-int4"));
        std::fs::remove_dir_all(&out).ok();
        for (what, run) in [("check", fusion(&["check"], &[&src])), ("convert", fusion(&["convert"], &[&src, &out]))] {
            let said = text(&run);
            assert_eq!(run.status.code(), Some(1), "{name}: {what}: {said}");
            assert!(!said.contains("panicked"), "{name}: {what}: {said}");
            for needle in needles {
                assert!(said.contains(needle), "{name}: {what} does not name `{needle}`: {said}");
            }
        }
        assert!(!out.exists(), "{name}: convert wrote {}", out.display());
    }
}
