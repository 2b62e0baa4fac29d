//! `fusion ask` end to end on generated checkpoints, and bad input: each failure is a clear
//! error that names the problem, exit code 1, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fusion::config::Backbone;
use fusion::testing::{TinySpec, write_tiny_checkpoint};
use serde_json::json;

fn photo(name: &str) -> PathBuf {
    crate::common::test_file("photos").join(name)
}

fn checkpoint(name: &str, spec: TinySpec) -> PathBuf {
    let dir = crate::common::scratch(&format!("cli-{name}"));
    write_tiny_checkpoint(&dir, &spec).unwrap();
    dir
}

fn ask(model: &Path, image: &Path, extra: &[&str]) -> Output {
    fusion_ask(model, Some(image), extra)
}

fn fusion_ask(model: &Path, image: Option<&Path>, extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fusion"));
    command.args(["ask", "--model"]).arg(model);
    if let Some(image) = image {
        command.arg("--image").arg(image);
    }
    command.args(extra).output().unwrap()
}

/// `(prompt tokens, new tokens)` of each answer's report on stderr.
fn reports(stderr: &str) -> Vec<(usize, usize)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix('['))
        .map(|l| {
            let n: Vec<usize> = l.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect();
            (n[0], n[1])
        })
        .collect()
}

fn assert_clear_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "expected an error naming `{needle}`, got: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn ask_without_a_photo_is_a_text_only_conversation() {
    let model = checkpoint("text", TinySpec::new(Backbone::Phi));
    let out =
        fusion_ask(&model, None, &["Who are you?", "--max-tokens", "3", "--then", "And then?", "--logprobs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // --logprobs: a JSON line after each answer, one entry per token with 2 alternatives.
    let logprobs: Vec<serde_json::Value> =
        stderr.lines().filter(|l| l.starts_with("{\"logprobs\"")).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(logprobs.len(), 2, "{stderr}");
    for l in &logprobs {
        let tokens = l["logprobs"].as_array().unwrap();
        assert!(
            !tokens.is_empty()
                && tokens
                    .iter()
                    .all(|t| t["top_logprobs"].as_array().unwrap().len() == 2 && t["logprob"].as_f64().unwrap() <= 0.0),
            "{l}"
        );
    }
    // The first prompt is the chat template's text alone: no image tokens or latents.
    let tokenizer = fusion::tokenizer::Tokenizer::load(&model, Backbone::Phi).unwrap();
    let answers = reports(&stderr);
    assert_eq!(answers.len(), 2, "{stderr}");
    assert_eq!(answers[0].0, tokenizer.text_prompt("Who are you?", None).unwrap().ids.len(), "{stderr}");

    // --system: the template's system prompt replaced.
    let system = "Answer every question in one short sentence of plain English.";
    let out = fusion_ask(&model, None, &["Who are you?", "--max-tokens", "2", "--system", system]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        reports(&stderr)[0].0,
        tokenizer.text_prompt("Who are you?", Some(system)).unwrap().ids.len(),
        "{stderr}"
    );
}

#[test]
fn ask_streams_an_answer_with_a_follow_up() {
    let model = checkpoint("ok", TinySpec::new(Backbone::Phi));
    let out = ask(
        &model,
        &photo("waterview.jpg"),
        &["What is in the photo?", "--max-tokens", "3", "--then", "Where is it?", "--reduced"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("> Where is it?"));
    // One report per answer: FUSION-L's 144 image tokens + latents in the first prompt; the
    // follow-up continues the KV cache, so only its own turn is prefilled.
    let reports = reports(&stderr);
    assert_eq!(reports.len(), 2, "{stderr}");
    assert!(reports[0].0 > 144 && reports[1].0 < 60, "{reports:?}");
    assert!(reports.iter().all(|r| r.1 == 3), "{reports:?}");
}

#[test]
fn info_names_the_adapter_and_what_it_offers() {
    let out = Command::new(env!("CARGO_BIN_EXE_fusion")).arg("info").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.starts_with("GPU ready: ") && stdout.contains("(shader-f16: ") && stdout.contains(", subgroups: "),
        "{stdout}"
    );
}

#[test]
fn an_unreadable_photo_is_named() {
    let model = checkpoint("photo", TinySpec::new(Backbone::Phi));
    let not_a_photo = model.join("config.json");
    assert_clear_failure(&ask(&model, &not_a_photo, &["q"]), "cannot decode the photo");
    assert_clear_failure(&ask(&model, &model.join("missing.jpg"), &["q"]), "missing.jpg");
}

#[test]
fn an_unknown_architecture_is_named() {
    let spec = TinySpec { config_overrides: json!({"model_type": "fusion_qwen"}), ..TinySpec::new(Backbone::Phi) };
    assert_clear_failure(&ask(&checkpoint("arch", spec), &photo("waterview.jpg"), &["q"]), "fusion_qwen");
    let spec = TinySpec {
        config_overrides: json!({"mm_vision_tower": "openai/clip-vit-large"}),
        ..TinySpec::new(Backbone::Phi)
    };
    assert_clear_failure(&ask(&checkpoint("tower", spec), &photo("waterview.jpg"), &["q"]), "unknown vision tower");
}

#[test]
fn a_missing_tensor_is_named() {
    let name = "model.layers.2.mlp.down_proj.weight";
    let spec = TinySpec { omit: Some(name.into()), ..TinySpec::new(Backbone::Llama) };
    assert_clear_failure(&ask(&checkpoint("missing", spec), &photo("waterview.jpg"), &["q"]), name);
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let spec =
        TinySpec { config_overrides: json!({"tokenizer_model_max_length": 200}), ..TinySpec::new(Backbone::Phi) };
    assert_clear_failure(
        &ask(&checkpoint("context", spec), &photo("waterview.jpg"), &["q"]),
        "exceed the model's context of 200",
    );
}

#[test]
fn bad_answer_options_are_refused() {
    let model = checkpoint("options", TinySpec::new(Backbone::Phi));
    let refused = |args: &[&str], needle: &str| {
        assert_clear_failure(&ask(&model, &photo("waterview.jpg"), &[&["q"], args].concat()), needle)
    };
    refused(&["--latents", "15"], "perfect square");
    refused(&["--top-p", "1.5"], "top_p: must be between 0 and 1, got 1.5");
    refused(&["--top-p", "NaN"], "top_p: must be between 0 and 1, got NaN");
    refused(&["--temperature=-1"], "temperature: must be 0 (greedy) or more, got -1");
    refused(&["--temperature", "inf"], "temperature: must be 0 (greedy) or more, got inf");
    refused(&["--repetition-penalty", "0"], "repetition_penalty: must be more than 0 (1 is none), got 0");
    refused(&["--frequency-penalty", "3"], "frequency_penalty: must be between -2 and 2 (0 is none), got 3");
    refused(&["--presence-penalty", "-2.5"], "presence_penalty: must be between -2 and 2 (0 is none), got -2.5");
    refused(&["--stop", "\n", "--stop", ""], "stop: stop sequence 1 is empty");
    refused(&["--logprobs", "21"], "top_logprobs: at most 20 alternatives per token, got 21");
}

#[test]
fn a_converted_model_answers_and_a_corrupt_shard_is_refused() {
    let src = checkpoint("convert-src", TinySpec::new(Backbone::Llama));
    let out = src.with_extension("int4");
    let run = Command::new(env!("CARGO_BIN_EXE_fusion")).arg("convert").arg(&src).arg(&out).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let ok = ask(&out, &photo("waterview.jpg"), &["What is this?", "--max-tokens", "2", "--int4"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let shard = out.join("shard-00000.bin");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[1000] ^= 0x10;
    std::fs::write(&shard, &bytes).unwrap();
    assert_clear_failure(&ask(&out, &photo("waterview.jpg"), &["q", "--int4"]), "shard is corrupt");
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    assert_clear_failure(&ask(&out, &photo("waterview.jpg"), &["q"]), "shard-00000.bin");
}

/// `fusion bench` on the tiny model: a report with every section, every time positive, and the
/// ratios consistent with the figures they come from.
#[test]
fn bench_writes_a_complete_report() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench.json");
    let run = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["bench", "--model", "tiny", "--tokens", "2", "--repeats", "1", "--copy-mib", "4", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let positive = |v: &serde_json::Value, what: &str| {
        let x = v.as_f64().unwrap_or_else(|| panic!("{what} missing in {report}"));
        assert!(x.is_finite() && x > 0.0, "{what} = {x}");
        x
    };
    let copy = positive(&report["copy_bandwidth_gb_s"], "copy bandwidth");
    positive(&report["launch_us"]["wgsl"], "launch overhead of our kernels");
    positive(&report["launch_us"]["burn"], "launch overhead of burn's");
    let text = report["text_stream_us"].as_array().unwrap_or_else(|| panic!("no text_stream_us in {report}"));
    assert_eq!(text.iter().map(|t| t["answer_tokens"].as_u64()).collect::<Vec<_>>(), [Some(512), Some(2048)]);
    for t in text {
        positive(&t["stream"], "streamed text, µs per token");
        positive(&t["whole_answer_each_step"], "whole-answer decode, µs per step");
    }
    assert!(!out.with_extension("json.partial").exists(), "the report is renamed into place, not left half-written");
    let model = &report["models"][0];
    assert_eq!(model["model"], "tiny");
    assert_eq!(model["finished"], true, "every phase ran: {model}");
    for variant in ["int4_fused", "int4_burn_attention"] {
        for key in ["tiles_ms", "vision_ms", "prefill_ms", "prefill_tok_s", "time_to_first_token_ms", "decode_tok_s"] {
            positive(&model[variant][key], &format!("{variant}.{key}"));
        }
    }
    assert_eq!(model["int4_fused"]["decode_graph"], "recorded", "{}", model["int4_fused"]);
    assert_eq!(model["greedy_pick"]["vocab"], model["decoder"]["vocab"]);
    for key in ["gpu_argmax_us", "read_back_and_cpu_argmax_us", "speedup"] {
        positive(&model["greedy_pick"][key], &format!("greedy_pick.{key}"));
    }
    positive(&model["int4_fused_launched_decode_tok_s"], "decode without the recorded step");
    positive(&model["int4_fused"]["first_decode_step_ms"], "the first decode step (compiles, records)");
    for memory in [&model["memory_after_load"], &model["cpu_side"]["memory_after_load"]] {
        let in_use = positive(&memory["in_use"], "GPU memory in use after loading");
        assert!(
            positive(&memory["weights"], "weights") <= in_use
                && in_use <= positive(&memory["reserved"], "GPU memory reserved"),
            "{memory}"
        );
    }
    let cpu = &model["cpu_side"];
    assert!(cpu["device"].as_str().is_some_and(|d| d.contains("noop")), "{cpu}");
    assert_eq!(cpu["decode_recorded_path"], "recorded", "{cpu}");
    for key in [
        "decode_recorded_us_per_token",
        "decode_launched_us_per_token",
        "decode_ceiling_tok_s",
        "tiles_ms",
        "vision_ms",
        "prefill_ms",
    ] {
        positive(&cpu[key], &format!("cpu_side.{key}"));
    }
    assert_eq!(model["int4_burn_attention"]["decode_graph"], "launched", "burn's ops are never recorded");
    let roofline = positive(&model["decode_roofline_tok_s"], "roofline");
    let bytes = positive(&model["decode_bytes_per_token"], "bytes per token");
    assert!(
        (roofline - copy * 1e9 / bytes).abs() <= 1e-3 * roofline + 1e-3,
        "roofline {roofline} vs {copy} GB/s over {bytes} B"
    );
    let cases: Vec<_> =
        model["attention"].as_array().unwrap().iter().map(|c| c["case"].as_str().unwrap().to_owned()).collect();
    assert_eq!(cases, ["decode", "prefill", "vision"]);
    let decode = &model["attention"][0];
    let gbs = positive(&decode["fused_gb_s"], "decode attention GB/s");
    let kv_bytes = positive(&decode["kv_bytes"], "decode attention bytes");
    assert!(
        (gbs - kv_bytes / (positive(&decode["fused_ms"], "decode attention ms") * 1e6)).abs() <= 0.01 * gbs + 1e-3,
        "{decode}"
    );
    assert!(
        (positive(&decode["fused_vs_copy"], "decode attention vs copy") - gbs / copy).abs() <= 0.01 * gbs / copy + 1e-3,
        "{decode}"
    );
    positive(&model["swiglu_epilogue"]["epilogue_ms"], "gate_up with SwiGLU in its epilogue");
    positive(&model["swiglu_epilogue"]["two_launches_ms"], "gate_up, then SwiGLU");
    positive(&model["norm_prologue"]["prologue_ms"], "qkv with RMSNorm in its prologue");
    positive(&model["norm_prologue"]["two_launches_ms"], "RMSNorm, then qkv");
    let groups: Vec<u64> =
        model["group_sizes"].as_array().unwrap().iter().map(|g| g["group"].as_u64().unwrap()).collect();
    assert_eq!(groups, [32, 64, 128]);
    for g in model["group_sizes"].as_array().unwrap() {
        positive(&g["rel_l2_pct_heavy_tailed"], "group error");
        positive(&g["matvec_gb_s"], "group matvec");
    }
    let splits = model["gemm_splits"].as_array().unwrap_or_else(|| panic!("no gemm_splits in {model}"));
    assert_eq!(splits.iter().filter(|g| g["splits"] == 1).count(), 4, "each case measured unsplit: {splits:?}");
    assert_eq!(splits.iter().filter(|g| g["default"] == true).count(), 4, "and with its chosen split: {splits:?}");
    for g in splits {
        positive(&g["tflop_s"], "split GEMM TFLOP/s");
    }
    for linear in model["linears"].as_array().unwrap() {
        let gbs = positive(&linear["int4_matvec_gb_s"], "matvec GB/s");
        let ms = positive(&linear["int4_matvec_ms"], "matvec ms");
        let bytes = positive(&linear["int4_bytes"], "int4 bytes");
        assert!((gbs - bytes / (ms * 1e6)).abs() <= 0.01 * gbs + 1e-3, "{linear}");
    }
}

#[test]
fn bench_rejects_unknown_models() {
    let run = Command::new(env!("CARGO_BIN_EXE_fusion")).args(["bench", "--model", "70b"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "clap usage error");
    assert!(String::from_utf8_lossy(&run.stderr).contains("70b"));
}

#[test]
fn bench_refuses_a_copy_probe_larger_than_the_device_binds() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-copy.json");
    let run = Command::new(env!("CARGO_BIN_EXE_fusion"))
        .args(["bench", "--model", "tiny", "--copy-mib", "1000000", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--copy-mib") && !stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "no report from a failed run");
}
