//! Sampling and stop rules: greedy, or temperature + top-p with a seed (spec §8); the
//! repetition penalties and stop sequences of the APIs people call models through.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::rng::SplitMix64;

#[derive(Clone, Debug)]
pub struct SamplingOptions {
    pub max_new_tokens: usize,
    /// 0 is greedy (the reference's evaluation setting and our default).
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    /// Hugging Face's `repetition_penalty` (1 is none): the logit of a token the answer already
    /// holds is divided by it where positive, multiplied by it where negative.
    pub repetition_penalty: f32,
    /// OpenAI's `frequency_penalty` (−2 to 2; 0 is none): subtracted from a token's logit once
    /// for every time the answer holds it.
    pub frequency_penalty: f32,
    /// OpenAI's `presence_penalty` (−2 to 2; 0 is none): subtracted once from the logit of
    /// every token the answer holds.
    pub presence_penalty: f32,
    /// Stop sequences (OpenAI's `stop`): the answer ends before the first of them in its text,
    /// which is not part of the answer.
    pub stop: Vec<String>,
    /// Report each answer token's log-probability and the `n` most likely tokens at its step
    /// (OpenAI's `logprobs` with `top_logprobs: n`, 0 to [`MAX_TOP_LOGPROBS`]).
    pub logprobs: Option<usize>,
}

/// The most alternatives a token's [`TokenLogprob`] lists (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// An answer token's log-probability, and the most likely tokens at its step.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// `(token, log-probability)`, most likely first (the lower id first among equals).
    pub top: Vec<(u32, f32)>,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 512,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            stop: Vec::new(),
            logprobs: None,
        }
    }
}

impl SamplingOptions {
    /// A clear error for options no sampler can follow (a NaN would otherwise make every token
    /// equally unlikely, or cut the nucleus anywhere).
    pub fn check(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::invalid("temperature", format!("must be 0 (greedy) or more, got {}", self.temperature)));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(Error::invalid("top_p", format!("must be between 0 and 1, got {}", self.top_p)));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::invalid(
                "repetition_penalty",
                format!("must be more than 0 (1 is none), got {}", self.repetition_penalty),
            ));
        }
        for (name, value) in
            [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)]
        {
            if !(-2.0..=2.0).contains(&value) {
                return Err(Error::invalid(name, format!("must be between -2 and 2 (0 is none), got {value}")));
            }
        }
        if let Some(i) = self.stop.iter().position(String::is_empty) {
            return Err(Error::invalid(
                "stop",
                format!("stop sequence {i} is empty: it would end every answer before it starts"),
            ));
        }
        if let Some(n) = self.logprobs.filter(|&n| n > MAX_TOP_LOGPROBS) {
            return Err(Error::invalid(
                "top_logprobs",
                format!("at most {MAX_TOP_LOGPROBS} alternatives per token, got {n}"),
            ));
        }
        Ok(())
    }

    fn penalises(&self) -> bool {
        self.repetition_penalty != 1.0 || self.frequency_penalty != 0.0 || self.presence_penalty != 0.0
    }
}

pub struct Sampler {
    options: SamplingOptions,
    rng: SplitMix64,
    /// How often each token occurs in the answer so far (kept only when a penalty needs it).
    counts: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(options: SamplingOptions) -> Self {
        let rng = SplitMix64::new(options.seed);
        Self { options, rng, counts: HashMap::new() }
    }

    /// Whether a pick is [`argmax`] of the logits as the model gave them, which the GPU can do
    /// instead (`kernels::argmax`) without the logits being read back.
    pub fn is_greedy(&self) -> bool {
        self.options.temperature <= 0.0 && !self.options.penalises() && self.options.logprobs.is_none()
    }

    /// The log-probability of `token`, picked from `logits` (penalised), with the alternatives
    /// asked for; `None` unless [`SamplingOptions::logprobs`] asks.
    ///
    /// Decided here: the probabilities are those of the distribution greedy decoding picks
    /// from, the softmax of the logits after the penalties and before temperature and top-p.
    /// They are the model's (as OpenAI's are), the same whatever the sampling settings, and
    /// the most likely token is the one greedy decoding answers with.
    pub fn logprob(&self, logits: &[f32], token: u32) -> Option<TokenLogprob> {
        let n = self.options.logprobs?;
        let finite = || logits.iter().copied().filter(|v| v.is_finite());
        let max = finite().fold(f32::NEG_INFINITY, f32::max);
        let log_total = max + finite().map(|v| (v - max).exp()).sum::<f32>().ln();
        let logprob = |v: f32| if v.is_finite() { v - log_total } else { f32::NEG_INFINITY };
        let mut ranked: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &v)| (i as u32, logprob(v))).collect();
        let more_likely = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let n = n.min(ranked.len());
        if n > 0 && n < ranked.len() {
            ranked.select_nth_unstable_by(n - 1, more_likely);
        }
        ranked.truncate(n);
        ranked.sort_unstable_by(more_likely);
        Some(TokenLogprob {
            token,
            logprob: logits.get(token as usize).map_or(f32::NEG_INFINITY, |&v| logprob(v)),
            top: ranked,
        })
    }

    /// `token` is now part of the answer.
    pub fn accept(&mut self, token: u32) {
        if self.options.penalises() {
            *self.counts.entry(token).or_default() += 1;
        }
    }

    /// The penalties for the tokens the answer holds, applied to a step's logits before
    /// [`Sampler::pick`].
    ///
    /// Decided here (the reference's scripts set no penalty, spec §8): the answer's own tokens
    /// are penalised, not the prompt's, as OpenAI's penalties and WebLLM's are (Hugging Face's
    /// `repetition_penalty` counts the prompt too). FUSION's prompt is the photo's placeholder
    /// tokens, the latents and the question: penalising the question's words would push the
    /// answer away from naming what it was asked about.
    pub fn penalise(&self, logits: &mut [f32]) {
        let o = &self.options;
        for (&token, &count) in &self.counts {
            let Some(logit) = logits.get_mut(token as usize) else { continue };
            *logit = if *logit > 0.0 { *logit / o.repetition_penalty } else { *logit * o.repetition_penalty };
            *logit -= o.frequency_penalty * count as f32 + o.presence_penalty;
        }
    }

    /// The next token from a step's logits. NaN logits never win.
    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.options.temperature <= 0.0 {
            return argmax(logits);
        }
        let t = self.options.temperature;
        let max = logits.iter().copied().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| (i as u32, ((v - max) / t).exp()))
            .collect();
        if probs.is_empty() {
            return argmax(logits);
        }
        let total: f32 = probs.iter().map(|p| p.1).sum();
        let (kept, mass) = nucleus(&mut probs, self.options.top_p, total);
        let mut r = self.rng.next_f32() * mass;
        for &(id, p) in &probs[..kept] {
            if r < p {
                return id;
            }
            r -= p;
        }
        probs[kept - 1].0
    }
}

/// Moves the nucleus of `probs` (unnormalised, summing to `total`) to its front and returns its
/// length and mass: the most likely tokens, most likely first (the lower id first among equals), up to
/// the first whose mass reaches `top_p` of the total, at least one. With `top_p` at 1 or more the
/// nucleus is every token, left in id order: a draw from all of them needs no order.
///
/// Sorting a whole vocabulary took 1.3 ms a token for the 3B's 32 064 and 5.5 ms for the 8B's
/// 128 256 (natively, on the project machine: more than an 8B decode step should take), where a
/// nucleus is mostly a few dozen tokens. So the `k` most likely are selected (linear) and only
/// they are sorted, `k` widening until they hold the nucleus.
pub(crate) fn nucleus(probs: &mut [(u32, f32)], top_p: f32, total: f32) -> (usize, f32) {
    if top_p >= 1.0 {
        return (probs.len(), total);
    }
    let target = top_p * total;
    let more_likely = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut k = probs.len().min(64);
    loop {
        if k < probs.len() {
            probs.select_nth_unstable_by(k - 1, more_likely);
        }
        probs[..k].sort_unstable_by(more_likely);
        let mut mass = 0.0;
        for (kept, p) in probs[..k].iter().enumerate() {
            if kept > 0 && mass >= target {
                return (kept, mass);
            }
            mass += p.1;
        }
        if k == probs.len() || mass >= target {
            return (k, mass);
        }
        k = probs.len().min(4 * k);
    }
}

/// [`nucleus`] by sorting every token (how the sampler found it before): the reference it is
/// tested and measured against (`fusion bench`, native only).
#[cfg(any(test, not(target_family = "wasm")))]
pub(crate) fn nucleus_by_sorting_all(probs: &mut [(u32, f32)], top_p: f32, total: f32) -> usize {
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let (mut kept, mut mass) = (0, 0.0);
    while kept < probs.len() && (kept == 0 || mass < top_p * total) {
        mass += probs[kept].1;
        kept += 1;
    }
    kept
}

/// An answer's text as it streams, cut before its first stop sequence. Text that may be the
/// start of one is held back until the next pieces show whether it is: shown text is never
/// taken back.
pub struct StopText<'a> {
    stops: &'a [String],
    /// Shown so far.
    shown: String,
    /// Not shown yet: the end of the text, a beginning of some stop sequence.
    held: String,
}

impl<'a> StopText<'a> {
    pub fn new(stops: &'a [String]) -> Self {
        Self { stops, shown: String::new(), held: String::new() }
    }

    /// `piece` added to the answer: the text that can be shown now, and whether a stop sequence
    /// ended the answer (the text before it is then all shown).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        self.held.push_str(piece);
        // The earliest stop sequence wins; shown text holds none, nor the start of one.
        if let Some(at) = self.stops.iter().filter_map(|stop| self.held.find(stop.as_str())).min() {
            self.held.truncate(at);
            return (self.release(self.held.len()), true);
        }
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| self.stops.iter().any(|stop| stop.starts_with(&self.held[i..])));
        (self.release(keep.unwrap_or(self.held.len())), false)
    }

    /// The text held back, for an answer that ended otherwise.
    pub fn finish(&mut self) -> String {
        self.release(self.held.len())
    }

    /// Whether text is held back, not shown yet.
    pub fn holds_back(&self) -> bool {
        !self.held.is_empty()
    }

    /// All the text shown.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn release(&mut self, len: usize) -> String {
        let out: String = self.held.drain(..len).collect();
        self.shown.push_str(&out);
        out
    }
}

/// The first index of the largest logit; NaN and -inf never win, and 0 when nothing else is left.
pub fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
        .0 as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_argmax_and_skips_nan() {
        let mut s = Sampler::new(SamplingOptions::default());
        assert_eq!(s.pick(&[0.1, f32::NAN, 3.0, 2.0]), 2);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus_and_the_seed_repeats() {
        let opts = SamplingOptions { temperature: 1.0, top_p: 0.5, seed: 9, ..Default::default() };
        let logits = [10.0, 0.0, 0.0, 0.0];
        let mut s = Sampler::new(opts.clone());
        assert!((0..50).all(|_| s.pick(&logits) == 0));
        let wide = SamplingOptions { top_p: 1.0, ..opts };
        let draw = |o: &SamplingOptions| {
            let mut s = Sampler::new(o.clone());
            (0..20).map(|_| s.pick(&[1.0, 1.0, 1.0])).collect::<Vec<_>>()
        };
        assert_eq!(draw(&wide), draw(&wide));
        assert!(draw(&wide).iter().any(|&t| t != 0));
    }
    #[test]
    fn the_nucleus_is_the_most_likely_prefix_of_a_whole_sort() {
        let mut rng = SplitMix64::new(7);
        for n in [1, 5, 64, 65, 300, 32064] {
            for spread in [0.3, 3.0, 30.0] {
                // Rounded, so that many tokens tie and the lower id must come first.
                let probs: Vec<(u32, f32)> = rng
                    .normal_vec(n, spread)
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i as u32, (v.round() / 2.0).exp()))
                    .collect();
                let total: f32 = probs.iter().map(|p| p.1).sum();
                for top_p in [0.0, 0.01, 0.5, 0.9, 0.999] {
                    let mut got = probs.clone();
                    let (kept, _) = nucleus(&mut got, top_p, total);
                    let mut sorted = probs.clone();
                    let want = nucleus_by_sorting_all(&mut sorted, top_p, total);
                    assert_eq!(got[..kept], sorted[..want], "n={n} spread={spread} top_p={top_p}");
                }
                let mut all = probs.clone();
                assert_eq!(nucleus(&mut all, 1.0, total), (n, total));
                assert_eq!(all, probs, "every token, in id order");
            }
        }
    }

    /// Every split of `text` into pieces shows the same: the text before the earliest stop
    /// sequence, nothing of it or after it, and no shown text taken back.
    #[test]
    fn stop_sequences_cut_the_streamed_text_wherever_the_pieces_break() {
        let stops = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            ("A boat. Question: why?", stops(&["Question:"]), "A boat. ", true),
            ("aab", stops(&["ab"]), "a", true),
            ("one, two. three", stops(&[".", ","]), "one", true),
            ("café ü 日本 end", stops(&["日本"]), "café ü ", true),
            ("Que? Quest", stops(&["Question"]), "Que? Quest", false),
            ("no stop here", stops(&[]), "no stop here", false),
            ("stop at once", stops(&["stop"]), "", true),
        ];
        for (text, stops, want, ends) in cases {
            let chars: Vec<(usize, char)> = text.char_indices().collect();
            // Every piece length from 1 to 4 characters, and the whole text at once.
            for size in [1, 2, 3, 4, chars.len()] {
                let mut stream = StopText::new(&stops);
                let (mut shown, mut ended) = (String::new(), false);
                for piece in chars.chunks(size) {
                    let (start, end) = (piece[0].0, piece.last().map(|(i, c)| i + c.len_utf8()).unwrap_or(0));
                    let (out, stop) = stream.push(&text[start..end]);
                    shown += &out;
                    if stop {
                        ended = true;
                        break;
                    }
                }
                if !ended {
                    shown += &stream.finish();
                }
                assert_eq!((shown.as_str(), ended), (want, ends), "{text:?} in pieces of {size}");
                assert_eq!(stream.shown(), want);
            }
        }
    }

    #[test]
    fn text_that_may_start_a_stop_sequence_waits() {
        let stops = vec!["\nUser:".to_owned()];
        let mut stream = StopText::new(&stops);
        assert_eq!(stream.push("Two boats\nUs"), ("Two boats".to_owned(), false));
        assert_eq!(stream.push("ually"), ("\nUsually".to_owned(), false));
        assert_eq!(stream.push("\n"), (String::new(), false));
        assert_eq!(stream.finish(), "\n");
    }

    #[test]
    fn penalties_lower_the_tokens_the_answer_holds() {
        let options = SamplingOptions {
            repetition_penalty: 2.0,
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            ..Default::default()
        };
        let mut s = Sampler::new(options);
        assert!(!s.is_greedy(), "penalties need the logits on the CPU");
        for token in [1, 2, 2, 9] {
            s.accept(token); // 9 is past this vocabulary: ignored
        }
        let mut logits = [4.0, 4.0, -1.0, 3.0];
        s.penalise(&mut logits);
        // Token 1: 4 / 2 − 0.5 − 0.25; token 2: −1 · 2 − 2 · 0.5 − 0.25.
        assert_eq!(logits, [4.0, 1.25, -3.25, 3.0]);
        assert_eq!(s.pick(&logits), 0, "greedy among the penalised logits");
        // Without penalties, nothing is counted and the GPU may pick.
        let mut plain = Sampler::new(SamplingOptions::default());
        plain.accept(0);
        let mut logits = [1.0, 0.0];
        plain.penalise(&mut logits);
        assert!(plain.is_greedy() && logits == [1.0, 0.0]);
    }

    #[test]
    fn logprobs_are_the_log_softmax_of_the_penalised_logits() {
        let logits = [1.0, 3.0, f32::NAN, 3.0, -2.0, f32::NEG_INFINITY];
        let none = Sampler::new(SamplingOptions::default());
        assert!(none.is_greedy() && none.logprob(&logits, 1).is_none());
        let s = Sampler::new(SamplingOptions { logprobs: Some(3), ..Default::default() });
        assert!(!s.is_greedy(), "log-probabilities need the logits on the CPU");
        let total: f64 = [1.0f64, 3.0, 3.0, -2.0].iter().map(|v| v.exp()).sum();
        let want = |v: f64| (v - total.ln()) as f32;
        let got = s.logprob(&logits, 4).unwrap();
        assert!((got.logprob - want(-2.0)).abs() < 1e-6, "{got:?}");
        // The most likely first, the lower id first among equals; NaN never listed above a number.
        assert_eq!(got.top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 3, 0]);
        assert!(got.top.iter().zip([3.0, 3.0, 1.0]).all(|(t, v)| (t.1 - want(v)).abs() < 1e-6), "{got:?}");
        assert_eq!(s.logprob(&logits, 2).unwrap().logprob, f32::NEG_INFINITY, "a NaN logit has no probability");
        let all =
            Sampler::new(SamplingOptions { logprobs: Some(20), ..Default::default() }).logprob(&logits, 1).unwrap();
        assert_eq!(all.top.len(), logits.len(), "no more alternatives than the vocabulary");
        assert!(
            Sampler::new(SamplingOptions { logprobs: Some(0), ..Default::default() })
                .logprob(&logits, 1)
                .unwrap()
                .top
                .is_empty()
        );
    }

    #[test]
    fn options_no_sampler_can_follow_are_refused() {
        let refused = |o: SamplingOptions| o.check().unwrap_err().to_string();
        let d = SamplingOptions::default;
        assert!(
            refused(SamplingOptions { repetition_penalty: 0.0, ..d() })
                .contains("repetition_penalty: must be more than 0")
        );
        assert!(refused(SamplingOptions { repetition_penalty: f32::NAN, ..d() }).contains("repetition_penalty"));
        assert!(
            refused(SamplingOptions { frequency_penalty: 2.5, ..d() })
                .contains("frequency_penalty: must be between -2 and 2")
        );
        assert!(refused(SamplingOptions { presence_penalty: f32::NAN, ..d() }).contains("presence_penalty"));
        assert!(
            refused(SamplingOptions { stop: vec!["x".into(), String::new()], ..d() })
                .contains("stop: stop sequence 1 is empty")
        );
        assert!(
            refused(SamplingOptions { logprobs: Some(21), ..d() })
                .contains("top_logprobs: at most 20 alternatives per token, got 21")
        );
        assert!(
            SamplingOptions {
                repetition_penalty: 1.3,
                frequency_penalty: -2.0,
                presence_penalty: 2.0,
                stop: vec!["\n".into()],
                ..d()
            }
            .check()
            .is_ok()
        );
    }

    /// The distribution a sampler should draw from, worked out here in f64 apart from the
    /// sampler's code: the logits penalised for `answer`, softmax at `temperature`, cut to the
    /// smallest most-likely prefix holding `top_p` of the mass, renormalised.
    fn expected_distribution(logits: &[f64], answer: &[u32], o: &SamplingOptions) -> Vec<f64> {
        let mut l = logits.to_vec();
        for (token, v) in l.iter_mut().enumerate() {
            let count = answer.iter().filter(|&&t| t as usize == token).count() as f64;
            if count > 0.0 {
                let r = o.repetition_penalty as f64;
                *v = if *v > 0.0 { *v / r } else { *v * r }
                    - o.frequency_penalty as f64 * count
                    - o.presence_penalty as f64;
            }
        }
        let e: Vec<f64> = l.iter().map(|v| (v / o.temperature as f64).exp()).collect();
        let total: f64 = e.iter().sum();
        let mut order: Vec<usize> = (0..e.len()).collect();
        order.sort_by(|&a, &b| e[b].total_cmp(&e[a]));
        let (mut kept, mut mass) = (Vec::new(), 0.0);
        for &i in &order {
            if !kept.is_empty() && mass >= o.top_p as f64 * total {
                break;
            }
            kept.push(i);
            mass += e[i];
        }
        (0..e.len()).map(|i| if kept.contains(&i) { e[i] / mass } else { 0.0 }).collect()
    }

    /// Pearson's chi-square of draws against the expected distribution, over the tokens it
    /// gives a probability, and the draws of tokens it gives none.
    fn chi_square(counts: &[usize], p: &[f64]) -> (f64, usize) {
        let n: usize = counts.iter().sum();
        let stat = counts
            .iter()
            .zip(p)
            .filter(|(_, p)| **p > 0.0)
            .map(|(&c, &p)| (c as f64 - n as f64 * p).powi(2) / (n as f64 * p))
            .sum();
        (stat, counts.iter().zip(p).filter(|(_, p)| **p == 0.0).map(|(c, _)| c).sum())
    }

    /// Draws after temperature, top-p and the three penalties follow the distribution they
    /// define: a chi-square bound at the 0.1 % level (the table's quantile for the degrees of
    /// freedom each case has), no draw outside the nucleus. Seeds fixed, so the verdict repeats;
    /// a nucleus one token too wide (≈ 4 % of the mass here) gives a statistic near 50.
    #[test]
    fn sampling_follows_the_softmax_after_penalties_temperature_and_top_p() {
        let logits = [2.0, 1.5, 1.0, 0.3, -0.5, -1.0];
        let penalties = SamplingOptions {
            repetition_penalty: 1.3,
            frequency_penalty: 0.4,
            presence_penalty: 0.2,
            ..Default::default()
        };
        // (options, the answer's tokens so far, tokens the nucleus keeps, the chi-square 0.999
        // quantile for that many − 1 degrees of freedom)
        let cases: [(_, &[u32], _, _); 3] = [
            (SamplingOptions { temperature: 0.7, top_p: 0.9, seed: 11, ..penalties.clone() }, &[0, 0, 3], 3, 13.82),
            (SamplingOptions { temperature: 1.3, top_p: 1.0, seed: 12, ..penalties.clone() }, &[0, 0, 3], 6, 20.52),
            (SamplingOptions { temperature: 1.0, top_p: 0.6, seed: 13, ..Default::default() }, &[], 2, 10.83),
        ];
        for (o, answer, kept, quantile) in cases {
            let p = expected_distribution(&logits, answer, &o);
            assert_eq!(p.iter().filter(|&&p| p > 0.0).count(), kept, "{o:?}: the case's nucleus");
            let mut s = Sampler::new(o.clone());
            answer.iter().for_each(|&t| s.accept(t));
            let mut counts = [0usize; 6];
            for _ in 0..30_000 {
                let mut l = logits.map(|v| v as f32);
                s.penalise(&mut l);
                counts[s.pick(&l) as usize] += 1;
            }
            let (stat, outside) = chi_square(&counts, &p);
            assert_eq!(outside, 0, "{o:?}: draws outside the nucleus: {counts:?}, expected {p:?}");
            assert!(stat < quantile, "{o:?}: chi-square {stat:.1} ≥ {quantile}: {counts:?}, expected {p:?}");
        }
    }

    #[test]
    fn sampling_follows_the_probabilities() {
        // exp(0) : exp(ln 3) = 1 : 3, at temperature 1 and with no nucleus cut.
        let mut s = Sampler::new(SamplingOptions { temperature: 1.0, top_p: 1.0, seed: 5, ..Default::default() });
        let draws = 4000;
        let ones = (0..draws).filter(|_| s.pick(&[0.0, 3f32.ln(), f32::NAN, f32::NEG_INFINITY]) == 1).count();
        assert!((ones as f64 / draws as f64 - 0.75).abs() < 0.03, "{ones} of {draws}");
    }
}
