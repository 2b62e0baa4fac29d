//! Sampling and stop rules: greedy, or temperature + top-p with a seed (spec §8).

use crate::rng::SplitMix64;

#[derive(Clone, Debug)]
pub struct SamplingOptions {
    pub max_new_tokens: usize,
    /// 0 is greedy (the reference's evaluation setting and our default).
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self { max_new_tokens: 512, temperature: 0.0, top_p: 1.0, seed: 0 }
    }
}

pub struct Sampler {
    options: SamplingOptions,
    rng: SplitMix64,
}

impl Sampler {
    pub fn new(options: SamplingOptions) -> Self {
        let rng = SplitMix64::new(options.seed);
        Self { options, rng }
    }

    /// Whether [`Sampler::pick`] is [`argmax`], which the GPU can do instead
    /// (`kernels::argmax`) without the logits being read back.
    pub fn is_greedy(&self) -> bool {
        self.options.temperature <= 0.0
    }

    /// The next token from a step's logits. NaN logits never win.
    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.is_greedy() {
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
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f32 = probs.iter().map(|p| p.1).sum();
        // Smallest prefix whose mass reaches top_p (always at least one token).
        let mut kept = 0;
        let mut mass = 0.0;
        while kept < probs.len() && (kept == 0 || mass < self.options.top_p * total) {
            mass += probs[kept].1;
            kept += 1;
        }
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

/// The first index of the largest logit; NaN and -inf never win, and 0 when nothing else is left.
pub fn argmax(logits: &[f32]) -> u32 {
    logits.iter().enumerate().fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0 as u32
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
        let draw = |o: &SamplingOptions| { let mut s = Sampler::new(o.clone()); (0..20).map(|_| s.pick(&[1.0, 1.0, 1.0])).collect::<Vec<_>>() };
        assert_eq!(draw(&wide), draw(&wide));
        assert!(draw(&wide).iter().any(|&t| t != 0));
    }
}
