//! Long conversations: the context policy (oldest follow-ups dropped, the photo's first turn
//! kept, a question that cannot fit refused clearly), a 300-turn soak with flat memory, and
//! conversations that go on after their GPU device is lost.

mod common;

use std::path::{Path, PathBuf};

use common::gpu;
use fusion::config::Backbone;
use fusion::engine::{AskOptions, Conversation, Engine, Photo};
use fusion::generate::SamplingOptions;
use fusion::image::Views;
use fusion::model::WeightFormat;
use fusion::session::Session;
use fusion::testing::{TinySpec, write_tiny_checkpoint};
use serde_json::json;

fn engine(name: &str, context: usize) -> Engine {
    let dir = std::env::temp_dir().join(format!("fusion-conversation-{}-{name}", std::process::id()));
    let spec = TinySpec { config_overrides: json!({"tokenizer_model_max_length": context}), ..TinySpec::new(Backbone::Llama) };
    write_tiny_checkpoint(&dir, &spec).unwrap();
    Engine::load(&dir, gpu(), WeightFormat::Int4 { group: 32 }).unwrap()
}

fn views() -> Views {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/photos/waterview.jpg");
    let (rgb, w, h) = fusion::image::decode(&std::fs::read(path).unwrap()).unwrap();
    Views::from_rgb(&rgb, w, h).unwrap()
}

fn photo(engine: &Engine) -> Photo {
    engine.encode_photo(views()).unwrap()
}

fn options(max_new_tokens: usize) -> AskOptions {
    AskOptions { sampling: SamplingOptions { max_new_tokens, ..Default::default() }, ..Default::default() }
}

fn ask(engine: &Engine, c: &mut Conversation, photo: &Photo, q: &str, o: &AskOptions) -> fusion::Result<String> {
    pollster::block_on(engine.ask(c, photo, q, o, |_| true)).map(|a| a.text)
}

#[test]
fn long_conversations_drop_the_oldest_follow_ups_and_keep_the_photo() {
    // 729 image tokens + 64 latents + the byte-level template's ≈ 400 tokens fill most of 1600.
    let (engine, context) = (engine("policy", 1600), 1600);
    let photo = photo(&engine);
    let o = options(6);
    let mut c = engine.new_conversation();
    ask(&engine, &mut c, &photo, "What is in this photo?", &o).unwrap();
    for i in 0..12 {
        ask(&engine, &mut c, &photo, &format!("And what else do you see, part {i}?"), &o).unwrap();
        assert!(c.context_len() <= context, "turn {i}: {} positions", c.context_len());
    }
    assert_eq!(c.questions().len(), 13, "every question is remembered");
    assert!(c.dropped_turns() > 0, "12 follow-ups of ≈ 45 positions cannot all fit");
    // The same history replayed (a page reload, an edited chat) applies the same policy.
    let history: Vec<(String, String)> = (0..13).map(|i| (format!("question {i}"), "an answer".to_owned())).collect();
    let resumed = engine.resume(&photo, &history, &o).unwrap();
    assert!(resumed.dropped_turns() > 0 && resumed.context_len() <= context);
    // A question that could never fit next to the photo is refused, naming the sizes.
    let e = ask(&engine, &mut c, &photo, &"why ".repeat(120), &o).unwrap_err().to_string();
    assert!(e.contains("exceed the model's context of 1600"), "{e}");
    // ...and the conversation goes on afterwards.
    ask(&engine, &mut c, &photo, "One more?", &o).unwrap();
}

/// Theil–Sen slope of `ys` against their index: the median of the slopes between every two
/// samples. A steady leak shows in every pair; a one-time step (the allocator reserving another
/// page) only in the pairs that straddle it, a minority, so it does not count.
fn slope(ys: &[f64]) -> f64 {
    let mut slopes: Vec<f64> = (0..ys.len()).flat_map(|i| (i + 1..ys.len()).map(move |j| (ys[j] - ys[i]) / (j - i) as f64)).collect();
    slopes.sort_by(f64::total_cmp);
    slopes[slopes.len() / 2]
}

fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() * 4096.0
}

#[test]
fn three_hundred_turns_keep_memory_flat() {
    let turns: usize = std::env::var("FUSION_SOAK_TURNS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let engine = engine("soak", 3000);
    let photo = photo(&engine);
    let o = options(3);
    let mut c = engine.new_conversation();
    ask(&engine, &mut c, &photo, "What is in this photo?", &o).unwrap();
    let (mut gpu_mb, mut rss_mb) = (Vec::new(), Vec::new());
    for i in 0..turns {
        ask(&engine, &mut c, &photo, &format!("Tell me more, please ({i})."), &o).unwrap();
        pollster::block_on(gpu().sync()).unwrap();
        gpu_mb.push(gpu().memory().0 as f64 / 1e6);
        rss_mb.push(rss_bytes() / 1e6);
    }
    // The KV cache fills and is trimmed, so memory saws up and down, and the allocators reserve
    // a page now and then; after the first rebuilds the trend must be flat.
    let settled = turns / 3;
    let (g, r) = (slope(&gpu_mb[settled..]), slope(&rss_mb[settled..]));
    eprintln!(
        "soak: {turns} turns, {} follow-ups dropped; GPU in use {:.1}–{:.1} MB, slope {g:+.4} MB/turn; RSS {:.1}–{:.1} MB, slope {r:+.4} MB/turn",
        c.dropped_turns(),
        gpu_mb.iter().cloned().fold(f64::MAX, f64::min),
        gpu_mb.iter().cloned().fold(0.0, f64::max),
        rss_mb.iter().cloned().fold(f64::MAX, f64::min),
        rss_mb.iter().cloned().fold(0.0, f64::max),
    );
    assert!(c.dropped_turns() > 0, "the soak must cross the context limit");
    // Keeping one turn's KV rows (≈ 45 positions × 640 B) would grow GPU memory ≈ 0.03 MB per
    // turn; measured slopes are ≤ 0.005 MB/turn.
    assert!(g.abs() < 0.01, "GPU memory grows {g} MB per turn");
    assert!(r < 0.02, "RSS grows {r} MB per turn");
}

/// Every file of a directory with its bytes, to show that a recovery wrote nothing there.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).map(|p| (p.clone(), std::fs::read(p).unwrap())).collect();
    files.sort();
    files
}

#[test]
fn a_lost_device_fails_its_answer_clearly_and_the_next_question_recovers() {
    // A converted model (int4 shards pinned by sha256), as the CLI and the browser load it.
    let root = std::env::temp_dir().join(format!("fusion-device-lost-{}", std::process::id()));
    let (src, dir) = (root.join("checkpoint"), root.join("converted"));
    write_tiny_checkpoint(&src, &TinySpec::new(Backbone::Phi)).unwrap();
    fusion::convert::convert(&src, &dir, &Default::default()).unwrap();
    let format = WeightFormat::Int4 { group: 32 };
    let questions = ["What is in this photo?", "What colour is the water?", "Is it daytime?", "Anything else?"];
    let o = options(6);

    // The answers on a device that is never lost.
    let engine = Engine::load(&dir, gpu(), format).unwrap();
    let photo = photo(&engine);
    let mut c = engine.new_conversation();
    let expected: Vec<String> = questions.iter().map(|q| ask(&engine, &mut c, &photo, q, &o).unwrap()).collect();
    let files = snapshot(&dir);

    // A device of its own, so that losing it leaves the other tests' device alone.
    let mut session = Session::open(&pollster::block_on(gpu().renew()).unwrap(), &dir, format, views()).unwrap();
    let answer = |session: &mut Session, q: &str, lose_at_piece: Option<usize>| {
        let device = session.gpu().clone();
        let mut pieces = 0;
        pollster::block_on(session.ask(q, &o, |_| {
            pieces += 1;
            if Some(pieces) == lose_at_piece {
                pollster::block_on(device.lose_device());
            }
            true
        }))
        .map(|a| a.text)
    };
    let lost = |r: fusion::Result<String>| match r {
        Err(e @ fusion::Error::DeviceLost(_)) => assert!(e.to_string().starts_with("the GPU device was lost (Destroyed)"), "{e}"),
        other => panic!("expected a lost device, got {other:?}"),
    };
    // Lost during the first answer: asked again, it is answered as if nothing had happened.
    lost(answer(&mut session, questions[0], Some(1)));
    assert_eq!(answer(&mut session, questions[0], None).unwrap(), expected[0]);
    // Lost during a follow-up: the conversation is replayed onto the new device.
    lost(answer(&mut session, questions[1], Some(2)));
    assert_eq!(answer(&mut session, questions[1], None).unwrap(), expected[1]);
    // Lost between questions: the next question notices, recovers first and is answered.
    pollster::block_on(session.gpu().lose_device());
    assert_eq!(answer(&mut session, questions[2], None).unwrap(), expected[2]);
    assert_eq!(answer(&mut session, questions[3], None).unwrap(), expected[3]);
    assert_eq!(session.recoveries(), 3);
    assert_eq!(session.conversation().questions().len(), 4, "a question lost with its device is not a turn");
    assert!(snapshot(&dir) == files, "recovering wrote to the model directory");
    std::fs::remove_dir_all(&root).unwrap();
}
