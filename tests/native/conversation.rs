//! Long conversations: the context policy (oldest follow-ups dropped, the photo's first turn
//! kept, a question that cannot fit refused clearly) and conversations that go on after their
//! GPU device is lost. The 300-turn soak is `tests/soak.rs`, alone in its process.

use std::path::{Path, PathBuf};

use crate::common::chat::{ask, engine, options, photo, views};
use crate::common::gpu;
use fusion::config::Backbone;
use fusion::engine::{Answer, AskOptions, Conversation, Engine, Photo, StopReason};
use fusion::generate::SamplingOptions;
use fusion::model::{VisionOptions, WeightFormat};
use fusion::session::Session;
use fusion::testing::{TinySpec, write_tiny_checkpoint};

#[test]
fn long_conversations_drop_the_oldest_follow_ups_and_keep_the_photo() {
    // 729 image tokens + 64 latents + the byte-level template's ≈ 400 tokens fill most of 1600.
    let (engine, context) = (engine(gpu(), "policy", 1600), 1600);
    let photo = photo(&engine);
    let o = options(6);
    let mut c = engine.new_conversation();
    // The same conversation, its photo prompt prefilled again at every rebuild: the rows kept
    // instead are the same, so the answers are too.
    let mut from_scratch = engine.new_conversation();
    let first = ask(&engine, &mut c, &photo, "What is in this photo?", &o).unwrap();
    assert_eq!(ask(&engine, &mut from_scratch, &photo, "What is in this photo?", &o).unwrap(), first);
    for i in 0..12 {
        let question = format!("And what else do you see, part {i}?");
        let answer = ask(&engine, &mut c, &photo, &question, &o).unwrap();
        assert!(c.context_len() <= context, "turn {i}: {} positions", c.context_len());
        from_scratch.forget_photo_prompt();
        assert_eq!(ask(&engine, &mut from_scratch, &photo, &question, &o).unwrap(), answer, "turn {i}");
        assert_eq!(from_scratch.context_len(), c.context_len(), "turn {i}");
    }
    assert_eq!(c.questions().len(), 13, "every question is remembered");
    assert!(c.dropped_turns() > 0, "12 follow-ups of ≈ 45 positions cannot all fit");
    // The same history replayed (a page reload, an edited chat) applies the same policy.
    let history: Vec<(String, String)> = (0..13).map(|i| (format!("question {i}"), "an answer".to_owned())).collect();
    let resumed = engine.resume(Some(&photo), &history, &o).unwrap();
    assert!(resumed.dropped_turns() > 0 && resumed.context_len() <= context);
    // A question that could never fit next to the photo is refused, naming the sizes.
    let e = ask(&engine, &mut c, &photo, &"why ".repeat(120), &o).unwrap_err().to_string();
    assert!(e.contains("exceed the model's context of 1600"), "{e}");
    // ...and the conversation goes on afterwards.
    ask(&engine, &mut c, &photo, "One more?", &o).unwrap();
}

/// Questions the tiny model answers in few tokens or in many.
const QUESTIONS: [&str; 8] = [
    "What is in this photo?",
    "Where is this?",
    "Describe it.",
    "How many boats?",
    "What colour is the sky?",
    "Is it daytime?",
    "What colour is the water?",
    "Anything else?",
];

/// A question of [`QUESTIONS`] answered in `max` tokens or more (greedy), and that answer's text.
fn long_answer(engine: &Engine, photo: &Photo, max: usize) -> (&'static str, String, Answer) {
    QUESTIONS
        .iter()
        .map(|q| (*q, streamed(engine, &mut engine.new_conversation(), photo, q, &options(max))))
        .find(|(_, (_, a))| a.stop == StopReason::Length)
        .map(|(q, (text, a))| (q, text, a))
        .unwrap_or_else(|| panic!("no question answered in {max} tokens or more"))
}

/// The answer to `q` and the context length after it, `on_text` stopping it after `pieces`.
fn answer(
    engine: &Engine,
    c: &mut Conversation,
    photo: &Photo,
    q: &str,
    o: &AskOptions,
    pieces: usize,
) -> (Answer, usize) {
    let mut streamed = 0;
    let a = pollster::block_on(engine.ask(c, Some(photo), q, o, |_| {
        streamed += 1;
        streamed < pieces
    }))
    .unwrap();
    (a, c.context_len())
}

#[test]
fn greedy_answers_decoded_ahead_leave_what_decoding_after_each_read_leaves() {
    // Greedy answers queue each step on the GPU's pick before reading it back, and take the
    // step back when the token ends the answer. A top-p that keeps only the most likely token
    // is the same argmax taken on the CPU, each step launched once its token is read.
    let greedy = options;
    let after_read = |max: usize| AskOptions {
        sampling: SamplingOptions { max_new_tokens: max, temperature: 1.0, top_p: 1e-9, ..Default::default() },
        ..Default::default()
    };
    let engine = engine(gpu(), "ahead", 2000);
    let photo = photo(&engine);
    // A question the tiny model answers with a stop token within 8 tokens, one it does not.
    let stops = |q: &&str| answer(&engine, &mut engine.new_conversation(), &photo, q, &greedy(8), usize::MAX).0.stop;
    let ends =
        QUESTIONS.iter().find(|q| stops(q) == StopReason::EndOfTurn).expect("a question answered within 8 tokens");
    let runs_on =
        QUESTIONS.iter().find(|q| stops(q) == StopReason::Length).expect("a question answered in more than 8 tokens");
    let cases = [
        (runs_on, 1, usize::MAX, StopReason::Length),
        (runs_on, 8, usize::MAX, StopReason::Length),
        (runs_on, 8, 3, StopReason::Cancelled),
        (ends, 8, usize::MAX, StopReason::EndOfTurn),
    ];
    for (question, max, pieces, reason) in cases {
        let (mut ahead, mut read) = (engine.new_conversation(), engine.new_conversation());
        let (a, a_len) = answer(&engine, &mut ahead, &photo, question, &greedy(max), pieces);
        let (b, b_len) = answer(&engine, &mut read, &photo, question, &after_read(max), pieces);
        let case = format!("{question:?}, {reason:?}, {max} tokens");
        assert_eq!(a.stop, reason, "{case}");
        assert_eq!((&a.tokens, a.stop, a_len), (&b.tokens, b.stop, b_len), "{case}");
        // A follow-up reads the whole cache: any row left from a step taken back would show.
        let follow_up = |c: &mut Conversation| answer(&engine, c, &photo, "And the colours?", &greedy(6), usize::MAX);
        let ((a, a_len), (b, b_len)) = (follow_up(&mut ahead), follow_up(&mut read));
        assert_eq!((a.tokens, a_len), (b.tokens, b_len), "{case}: the follow-up");
    }
}

/// The text streamed for `q` and the answer.
fn streamed(engine: &Engine, c: &mut Conversation, photo: &Photo, q: &str, o: &AskOptions) -> (String, Answer) {
    let mut text = String::new();
    let a = pollster::block_on(engine.ask(c, Some(photo), q, o, |piece| {
        text += piece;
        true
    }))
    .unwrap();
    (text, a)
}

#[test]
fn a_stop_sequence_ends_the_answer_before_it_and_the_conversation_goes_on_as_rebuilt() {
    let engine = engine(gpu(), "stop", 2000);
    let photo = photo(&engine);
    let (q, full, whole) = long_answer(&engine, &photo, 24);
    // A stop sequence of two characters found first in the second half of that answer, so
    // the tokens before it are decoded one step ahead and then taken back.
    let at: Vec<usize> = full.char_indices().map(|(i, _)| i).chain([full.len()]).collect();
    let (cut_at, stop) = (at.len() / 2..at.len() - 2)
        .map(|k| (at[k], &full[at[k]..at[k + 2]]))
        .find(|&(i, s)| full.find(s) == Some(i) && !s.trim().is_empty())
        .unwrap_or_else(|| panic!("no two characters found first in the second half of {full:?}"));
    let with_stop = |max: usize| AskOptions {
        sampling: SamplingOptions { stop: vec!["never said".into(), stop.into()], ..options(max).sampling },
        ..Default::default()
    };
    let mut c = engine.new_conversation();
    let (shown, cut) = streamed(&engine, &mut c, &photo, q, &with_stop(24));
    assert_eq!(
        (cut.stop, shown.as_str(), cut.text.as_str()),
        (StopReason::StopSequence, &full[..cut_at], full[..cut_at].trim()),
        "stop {stop:?}"
    );
    assert!(cut.tokens.len() < whole.tokens.len() && whole.tokens.starts_with(&cut.tokens));
    // The follow-up reads a cache that holds the answer as its text reads, stop sequence left
    // out: the cache of the conversation rebuilt from its turns.
    let mut rebuilt = engine.resume(Some(&photo), &[(q.to_owned(), cut.text.clone())], &with_stop(24)).unwrap();
    let follow_up = |c: &mut Conversation| {
        let (a, len) = answer(&engine, c, &photo, "And the colours?", &options(8), usize::MAX);
        (a.tokens, len)
    };
    assert_eq!(follow_up(&mut c), follow_up(&mut rebuilt));

    // Cancelled while text that may start a stop sequence is held back: the answer is the text
    // shown. Two stop sequences that start with the answer's characters k and k + 1 and never
    // occur whole: the piece k + 1 releases character k and is held itself, and the caller
    // stops there.
    let k = at.len() / 2;
    let stops = vec![format!("{}\0never", &full[at[k]..at[k + 1]]), format!("{}\0never", &full[at[k + 1]..at[k + 2]])];
    let o = AskOptions { sampling: SamplingOptions { stop: stops, ..options(24).sampling }, ..Default::default() };
    let (mut c, mut shown) = (engine.new_conversation(), String::new());
    let cancelled = pollster::block_on(engine.ask(&mut c, Some(&photo), q, &o, |piece| {
        shown += piece;
        shown.len() <= at[k]
    }))
    .unwrap();
    assert_eq!(
        (cancelled.stop, shown.as_str(), cancelled.text.as_str()),
        (StopReason::Cancelled, &full[..at[k + 1]], full[..at[k + 1]].trim())
    );
    assert_ne!(engine.tokenizer.decode(&cancelled.tokens).unwrap(), shown, "nothing was held back: a weak test");
    let mut rebuilt = engine.resume(Some(&photo), &[(q.to_owned(), cancelled.text.clone())], &o).unwrap();
    assert_eq!(follow_up(&mut c), follow_up(&mut rebuilt), "the follow-up after the cancelled answer");

    // A stop sequence the answer never reaches changes nothing.
    let (text, a) = streamed(
        &engine,
        &mut engine.new_conversation(),
        &photo,
        q,
        &AskOptions {
            sampling: SamplingOptions { stop: vec!["never said".into()], ..options(24).sampling },
            ..Default::default()
        },
    );
    assert_eq!((text, a.tokens, a.stop), (full, whole.tokens, StopReason::Length));
}

#[test]
fn the_streamed_text_is_the_answers_text_even_when_the_budget_cuts_a_character() {
    let engine = engine(gpu(), "cut", 2000);
    let photo = photo(&engine);
    // A question and a token budget that ends its greedy answer within a character's bytes,
    // the answer's first U+FFFD.
    let cut = |text: String| text.ends_with('\u{FFFD}') && !text.trim_end_matches('\u{FFFD}').contains('\u{FFFD}');
    let (q, max) = QUESTIONS
        .iter()
        .find_map(|q| {
            let whole = streamed(&engine, &mut engine.new_conversation(), &photo, q, &options(24)).1;
            (1..=whole.tokens.len())
                .find(|&n| cut(engine.tokenizer.decode(&whole.tokens[..n]).unwrap()))
                .map(|n| (q, n))
        })
        .expect("no answer with a character of several tokens");
    let (text, a) = streamed(&engine, &mut engine.new_conversation(), &photo, q, &options(max));
    assert_eq!((a.stop, a.tokens.len()), (StopReason::Length, max));
    assert!(cut(a.text.clone()), "{:?}", a.text);
    assert_eq!(text.trim(), a.text);

    // That text, never streamed before the answer ended, may still hold a stop sequence.
    let o = AskOptions {
        sampling: SamplingOptions { stop: vec!["\u{FFFD}".into()], ..options(max).sampling },
        ..Default::default()
    };
    let (text, stopped) = streamed(&engine, &mut engine.new_conversation(), &photo, q, &o);
    let before = a.text.trim_end_matches('\u{FFFD}');
    assert_eq!((stopped.stop, text.trim(), stopped.text.as_str()), (StopReason::StopSequence, before, before.trim()));
}

#[test]
fn a_system_prompt_takes_the_templates_place_and_another_one_rebuilds_the_conversation() {
    let engine = engine(gpu(), "system", 2000);
    let photo = photo(&engine);
    // Each token's log-probability shows any difference in what the model read.
    let under = |system: Option<&str>, max: usize| AskOptions {
        system: system.map(str::to_owned),
        sampling: SamplingOptions { logprobs: Some(0), ..options(max).sampling },
        ..Default::default()
    };
    let logprobs = |a: &Answer| a.logprobs.iter().map(|l| l.logprob).collect::<Vec<f32>>();
    let prompt_len = |system: Option<&str>| engine.tokenizer.image_prompt("Where?", system).unwrap().ids.len();
    // Two system prompts of one length: a cache of one's first turn has the other's length.
    let (french, german) = (Some("Answer in French."), Some("Answer in German."));
    assert_eq!(prompt_len(french), prompt_len(german));
    let q = QUESTIONS[0];
    let plain = answer(&engine, &mut engine.new_conversation(), &photo, q, &under(None, 8), usize::MAX).0;
    let mut c = engine.new_conversation();
    let first = answer(&engine, &mut c, &photo, q, &under(french, 8), usize::MAX).0;
    assert_eq!(first.prompt_tokens + prompt_len(None), plain.prompt_tokens + prompt_len(french));
    assert_ne!(logprobs(&first), logprobs(&plain), "the system prompt was not read");

    // A follow-up under the other one: the conversation rebuilt under it from its turns.
    let follow_up = |c: &mut Conversation| {
        let (a, len) = answer(&engine, c, &photo, "And the colours?", &under(german, 6), usize::MAX);
        (a.tokens.clone(), logprobs(&a), len)
    };
    let mut rebuilt = engine.resume(Some(&photo), &[(q.to_owned(), first.text.clone())], &under(german, 6)).unwrap();
    assert_eq!(follow_up(&mut c), follow_up(&mut rebuilt));
    assert_eq!(c.questions().len(), 2);
    // Only the new system prompt rebuilt: the resumed conversation's follow-up, under its own,
    // prefilled its turn alone.
    assert_eq!((c.rebuilds(), rebuilt.rebuilds()), (1, 0));
}

#[test]
fn penalised_answers_are_the_greedy_picks_of_the_penalised_logits() {
    let engine = engine(gpu(), "penalties", 2000);
    let photo = photo(&engine);
    let (max, repetition, frequency, presence) = (16, 1.8, 0.6, 0.3);
    let (q, _, plain) = long_answer(&engine, &photo, max);
    let sampling = SamplingOptions {
        max_new_tokens: max,
        repetition_penalty: repetition,
        frequency_penalty: frequency,
        presence_penalty: presence,
        ..Default::default()
    };
    let got =
        streamed(&engine, &mut engine.new_conversation(), &photo, q, &AskOptions { sampling, ..Default::default() }).1;

    // The same greedy loop written out, each step's logits read back and lowered here.
    let model = &engine.model;
    let mut cache = model.new_cache();
    let vision = VisionOptions { latents: model.config.default_latents(), reduced_side: None };
    let prompt = engine.tokenizer.image_prompt(q, None).unwrap();
    let read = |logits| pollster::block_on(fusion::gpu::read_f32(logits)).unwrap();
    let mut logits =
        read(model.prefill(&prompt, Some((&photo.views, &photo.context)), vision, &mut cache, None).unwrap());
    let mut tokens: Vec<u32> = Vec::new();
    while tokens.len() < max {
        for token in tokens.iter().copied().collect::<std::collections::BTreeSet<u32>>() {
            let count = tokens.iter().filter(|&&t| t == token).count() as f32;
            let logit = &mut logits[token as usize];
            *logit =
                if *logit > 0.0 { *logit / repetition } else { *logit * repetition } - frequency * count - presence;
        }
        let token = fusion::generate::argmax(&logits);
        if engine.stop_ids().contains(&token) {
            break;
        }
        tokens.push(token);
        logits = read(model.decode(token, &mut cache).unwrap());
    }
    assert_eq!(got.tokens, tokens);
    assert_ne!(plain.tokens, got.tokens, "the penalties changed nothing: a weak test");
}

#[test]
fn a_conversation_without_a_photo_is_the_plain_llm() {
    // WebGPU's baseline kernels: f32 prefill GEMMs, as the decode steps' matvecs are.
    let engine = engine(&gpu().clone().baseline(), "text", 2000);
    let model = &engine.model;
    let read = |logits| pollster::block_on(fusion::gpu::read_f32(logits)).unwrap();
    let q = "Who are you?";
    let prompt = engine.tokenizer.text_prompt(q, None).unwrap();
    // A causal LM with no latents: its prompt prefilled at once or one token at a time gives
    // the same logits (an image prompt would not: its latents read the last token's states).
    let vision = VisionOptions { latents: model.config.default_latents(), reduced_side: None };
    let whole = read(model.prefill(&prompt, None, vision, &mut model.new_cache(), None).unwrap());
    let mut cache = model.new_cache();
    let ids: Vec<u32> = prompt.ids.iter().map(|&id| id as u32).collect();
    model
        .prefill(
            &fusion::model::Prompt { ids: vec![prompt.ids[0]], instructs: Vec::new() },
            None,
            vision,
            &mut cache,
            None,
        )
        .unwrap();
    let stepped = ids[1..].iter().fold(None, |_, &id| Some(read(model.decode(id, &mut cache).unwrap()))).unwrap();
    assert!(fusion::quant::rel_l2(&stepped, &whole) < 1e-4, "{}", fusion::quant::rel_l2(&stepped, &whole));

    // The engine's answers are the greedy loop over those logits, the first prompt the
    // template's text, a follow-up's its own turn after the answer in the cache.
    let greedy = |cache: &mut fusion::model::KvCache, prompt: &fusion::model::Prompt, max: usize| {
        let mut logits = read(model.prefill(prompt, None, vision, cache, None).unwrap());
        let mut tokens = Vec::new();
        while tokens.len() < max {
            let token = fusion::generate::argmax(&logits);
            if engine.stop_ids().contains(&token) {
                break;
            }
            tokens.push(token);
            logits = read(model.decode(token, cache).unwrap());
        }
        tokens
    };
    let mut c = engine.new_conversation();
    let mut ask =
        |q: &str, max: usize| pollster::block_on(engine.ask(&mut c, None, q, &options(max), |_| true)).unwrap();
    let (first, then) = (ask(q, 12), ask("And then?", 8));
    assert_eq!(first.prompt_tokens, prompt.ids.len());
    let mut cache = model.new_cache();
    assert_eq!(first.tokens, greedy(&mut cache, &prompt, 12));
    let follow_up = engine.tokenizer.follow_up("And then?").unwrap().into_iter().map(i64::from).collect();
    assert_eq!(then.tokens, greedy(&mut cache, &fusion::model::Prompt { ids: follow_up, instructs: Vec::new() }, 8));
    assert_eq!(c.context_len(), cache.len() - 1, "the follow-up's last token is not in the cache yet");

    // A text-only history replayed: the template's first turn, then the answers' text.
    let answer = "I am a model.";
    let resumed = engine.resume(None, &[(q.to_owned(), answer.to_owned())], &options(8)).unwrap();
    assert_eq!(resumed.context_len(), prompt.ids.len() + engine.tokenizer.encode(answer, false).unwrap().len());
}

#[test]
fn log_probabilities_are_the_log_softmax_of_each_steps_logits() {
    let engine = engine(gpu(), "logprobs", 2000);
    let photo = photo(&engine);
    let (q, _, plain) = long_answer(&engine, &photo, 10);
    let sampling = SamplingOptions { max_new_tokens: 10, logprobs: Some(3), ..Default::default() };
    let got =
        streamed(&engine, &mut engine.new_conversation(), &photo, q, &AskOptions { sampling, ..Default::default() }).1;
    // Greedy answers with log-probabilities pick on the CPU what the GPU picks without.
    assert_eq!(got.tokens, plain.tokens);
    assert!(plain.logprobs.is_empty(), "not asked for");

    // Each step's logits read back here, their log-softmax in f64.
    let model = &engine.model;
    let mut cache = model.new_cache();
    let vision = VisionOptions { latents: model.config.default_latents(), reduced_side: None };
    let read = |logits| pollster::block_on(fusion::gpu::read_f32(logits)).unwrap();
    let mut logits = read(
        model
            .prefill(
                &engine.tokenizer.image_prompt(q, None).unwrap(),
                Some((&photo.views, &photo.context)),
                vision,
                &mut cache,
                None,
            )
            .unwrap(),
    );
    assert_eq!(got.logprobs.len(), got.tokens.len());
    for (step, (&token, lp)) in got.tokens.iter().zip(&got.logprobs).enumerate() {
        let log_total = logits.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
        let want = |t: u32| logits[t as usize] as f64 - log_total;
        assert_eq!(lp.token, token);
        assert!((lp.logprob as f64 - want(token)).abs() < 1e-4, "step {step}: {} against {}", lp.logprob, want(token));
        let mut ranked: Vec<u32> = (0..logits.len() as u32).collect();
        ranked.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), ranked[..3], "step {step}");
        assert!(lp.top.iter().all(|&(t, l)| (l as f64 - want(t)).abs() < 1e-4), "step {step}");
        logits = read(model.decode(token, &mut cache).unwrap());
    }
    // OpenAI's `logprobs.content`: the tokens' bytes are the answer's.
    let json = engine.logprobs_json(&got);
    let bytes: Vec<u8> = json
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["bytes"].as_array().unwrap().iter().map(|b| b.as_u64().unwrap() as u8))
        .collect();
    assert_eq!(String::from_utf8_lossy(&bytes).trim(), got.text);
    assert_eq!(json[0]["top_logprobs"].as_array().unwrap().len(), 3);
}

/// Every file of a directory with its bytes, to show that a recovery wrote nothing there.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn a_lost_device_fails_its_answer_clearly_and_the_next_question_recovers() {
    // A converted model (int4 shards pinned by sha256), as the CLI and the browser load it.
    let root = crate::common::scratch("device-lost");
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
    let mut session = Session::open(&pollster::block_on(gpu().renew()).unwrap(), &dir, format, Some(views())).unwrap();
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
        Err(e @ fusion::Error::DeviceLost(_)) => {
            assert!(e.to_string().starts_with("the GPU device was lost (Destroyed)"), "{e}")
        }
        other => panic!("expected a lost device, got {other:?}"),
    };
    // Lost during the first answer: asked again, it is answered as if nothing had happened.
    lost(answer(&mut session, questions[0], Some(1)));
    assert_eq!(answer(&mut session, questions[0], None).unwrap(), expected[0]);
    // Lost during a follow-up: the conversation is replayed onto the new device. At its first
    // piece of text (its third token of six), so that tokens are still to be computed: greedy
    // decoding runs a step ahead, so a loss after the last step an answer needs has queued
    // leaves that answer whole, and is noticed by the next question.
    lost(answer(&mut session, questions[1], Some(1)));
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
