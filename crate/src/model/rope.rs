//! Rotary position embeddings of both backbones (transformers 4.48.1 `modeling_rope_utils.py`):
//! Phi-3.5's long-RoPE and LLaMA-3.1's `llama3` scaling. Computed in f32 in the same order as
//! the reference, rotate-half layout (`cos = cat(cos f, cos f)`).

use crate::config::{FusionConfig, RopeScaling};
use crate::error::{Error, Result};

pub struct Rope {
    /// `[head_dim / 2]`
    inv_freq: Vec<f32>,
    /// Multiplies cos and sin (long-RoPE's attention factor; 1 otherwise).
    scale: f32,
}

impl Rope {
    pub fn new(c: &FusionConfig) -> Result<Self> {
        let dim = c.head_dim();
        let base = c.rope_theta as f32;
        let exponent = |i: usize| (2 * i) as f32 / dim as f32;
        let default: Vec<f32> = (0..dim / 2).map(|i| 1.0 / base.powf(exponent(i))).collect();
        Ok(match &c.rope_scaling {
            None => Self { inv_freq: default, scale: 1.0 },
            Some(RopeScaling::LongRope { short_factor, long_factor }) => {
                if short_factor.len() != dim / 2 || long_factor.len() != dim / 2 {
                    return Err(Error::invalid(
                        "config.json",
                        format!("rope_scaling factor lists must have head_dim/2 = {} entries", dim / 2),
                    ));
                }
                // [§10.12] The context is capped at original_max_position_embeddings, so only the
                // short factors are ever used.
                let original = c.original_max_position_embeddings.unwrap_or(c.max_position_embeddings);
                let factor = c.max_position_embeddings as f64 / original as f64;
                let scale = if factor <= 1.0 { 1.0 } else { (1.0 + factor.ln() / (original as f64).ln()).sqrt() };
                let inv_freq = (0..dim / 2).map(|i| 1.0 / (short_factor[i] * base.powf(exponent(i)))).collect();
                Self { inv_freq, scale: scale as f32 }
            }
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old = *original_max_position_embeddings as f32;
                let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
                let inv_freq = default
                    .iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            let s = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - s) * f / factor + s * f
                        }
                    })
                    .collect();
                Self { inv_freq, scale: 1.0 }
            }
        })
    }

    /// Row-major `[len, head_dim]` cos and sin tables for positions `start..start + len`.
    pub fn tables(&self, start: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(len * 2 * half);
        let mut sin = Vec::with_capacity(len * 2 * half);
        for pos in start..start + len {
            for _ in 0..2 {
                for &f in &self.inv_freq {
                    let angle = pos as f32 * f;
                    cos.push(angle.cos() * self.scale);
                    sin.push(angle.sin() * self.scale);
                }
            }
        }
        (cos, sin)
    }
}
