//! The int4 weight format: group-wise symmetric quantisation with f16 scales.
//!
//! A linear weight `W[rows, cols]` (PyTorch `[out, in]`) is cut along `cols` into groups of
//! `group` values. Each group has one scale `s = max|w| / 7` rounded to f16, and each weight is
//! stored as `q = clamp(round(w / s), -8, 7)` biased to a nibble `q + 8`. Eight nibbles fill a
//! `u32`, lowest nibble first, along `cols`; rows are padded with zero weights to a whole number
//! of groups so a workgroup never straddles two rows inside a word. This is the layout the WGSL
//! kernels read: one row is one contiguous run of words, read coalesced by a workgroup.
//!
//! [`Int4Weight::dequantize`] is the CPU reference every int4 kernel is tested against.

use half::f16;

use crate::error::{Error, Result};

/// Values per packed word.
pub const NIBBLES_PER_WORD: usize = 8;

/// Values per 16-byte load of the kernels (`vec4<u32>`): groups are whole multiples of it, so
/// every load holds weights of one group and every row starts 16-byte aligned.
pub const NIBBLES_PER_LOAD: usize = 32;

/// The group sizes the format allows: positive multiples of [`NIBBLES_PER_LOAD`] (32, 64, 128…).
pub fn valid_group(group: usize) -> bool {
    group > 0 && group.is_multiple_of(NIBBLES_PER_LOAD)
}

#[derive(Clone, Debug, PartialEq)]
pub struct Int4Weight {
    pub rows: usize,
    pub cols: usize,
    pub group: usize,
    /// `[rows, words_per_row]`
    pub packed: Vec<u32>,
    /// `[rows, groups_per_row]`
    pub scales: Vec<f16>,
}

impl Int4Weight {
    pub fn groups_per_row(cols: usize, group: usize) -> usize {
        cols.div_ceil(group)
    }

    pub fn words_per_row(cols: usize, group: usize) -> usize {
        Self::groups_per_row(cols, group) * group / NIBBLES_PER_WORD
    }

    /// Quantise a row-major `[rows, cols]` f32 matrix. `name` only labels errors.
    pub fn quantize(name: &str, w: &[f32], rows: usize, cols: usize, group: usize) -> Result<Self> {
        if !valid_group(group) {
            return Err(Error::invalid(
                name,
                format!("int4 group size {group} is not a positive multiple of {NIBBLES_PER_LOAD}"),
            ));
        }
        if w.len() != rows * cols {
            return Err(Error::invalid(
                name,
                format!("expected {rows}x{cols} = {} values, got {}", rows * cols, w.len()),
            ));
        }
        if let Some(bad) = w.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(name, format!("non-finite weight {} at index {bad}", w[bad])));
        }
        let groups = Self::groups_per_row(cols, group);
        let words = Self::words_per_row(cols, group);
        let mut packed = vec![0u32; rows * words];
        let mut scales = vec![f16::ZERO; rows * groups];
        for r in 0..rows {
            let row = &w[r * cols..(r + 1) * cols];
            for g in 0..groups {
                let span = &row[g * group..((g + 1) * group).min(cols)];
                let absmax = span.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = f16::from_f32(absmax / 7.0);
                scales[r * groups + g] = scale;
                let inv = if scale.to_f32() > 0.0 { 1.0 / scale.to_f32() } else { 0.0 };
                for (i, v) in span.iter().enumerate() {
                    let q = (v * inv).round().clamp(-8.0, 7.0) as i32;
                    let k = g * group + i;
                    let word = &mut packed[r * words + k / NIBBLES_PER_WORD];
                    *word |= ((q + 8) as u32) << (4 * (k % NIBBLES_PER_WORD));
                }
                // Padding past `cols` stays nibble 0 here; make it the zero weight (nibble 8).
                for k in cols.max(g * group)..(g + 1) * group {
                    packed[r * words + k / NIBBLES_PER_WORD] |= 8 << (4 * (k % NIBBLES_PER_WORD));
                }
            }
        }
        Ok(Self { rows, cols, group, packed, scales })
    }

    /// The weights the kernels actually multiply by, row-major `[rows, cols]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let groups = Self::groups_per_row(self.cols, self.group);
        let words = Self::words_per_row(self.cols, self.group);
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            for k in 0..self.cols {
                let word = self.packed[r * words + k / NIBBLES_PER_WORD];
                let q = ((word >> (4 * (k % NIBBLES_PER_WORD))) & 0xF) as i32 - 8;
                out.push(q as f32 * self.scales[r * groups + k / self.group].to_f32());
            }
        }
        out
    }

    /// Scales as the kernels bind them: f16 pairs in `u32`s (`unpack2x16float`), padded to even.
    pub fn scales_u32(&self) -> Vec<u32> {
        self.scales
            .chunks(2)
            .map(|p| p[0].to_bits() as u32 | (p.get(1).map_or(0, |h| h.to_bits()) as u32) << 16)
            .collect()
    }
}

/// `y[m, n] = Σ_k x[m, k] · W[n, k]` on the CPU in f64: the reference for the int4 kernels.
pub fn matvec_reference(x: &[f32], m: usize, w: &[f32], n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let acc: f64 = (0..k).map(|t| x[i * k + t] as f64 * w[j * k + t] as f64).sum();
            y[i * n + j] = acc as f32;
        }
    }
    y
}

/// Relative L2 error `‖got − want‖ / ‖want‖`, the tolerance measure of every numerical test.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "rel_l2 of tensors with different sizes");
    let (mut num, mut den) = (0f64, 0f64);
    for (g, w) in got.iter().zip(want) {
        num += (*g as f64 - *w as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    if den == 0.0 { num.sqrt() } else { (num / den).sqrt() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn quantisation_error_is_within_half_a_step() {
        let (rows, cols, group) = (5, 77, 32);
        let w = SplitMix64::new(7).normal_vec(rows * cols, 1.0);
        let q = Int4Weight::quantize("w", &w, rows, cols, group).unwrap();
        let dq = q.dequantize();
        for r in 0..rows {
            for k in 0..cols {
                let s = q.scales[r * 3 + k / group].to_f32();
                assert!((w[r * cols + k] - dq[r * cols + k]).abs() <= s * 0.5 + 1e-6);
            }
        }
    }

    #[test]
    fn padding_nibbles_are_zero_weights() {
        let q = Int4Weight::quantize("w", &[1.0, -1.0, 0.5], 1, 3, 32).unwrap();
        assert_eq!(q.packed[0] >> 12, 0x88888);
        assert_eq!(&q.packed[1..], &[0x8888_8888; 3]);
    }

    #[test]
    fn bad_inputs_are_named_errors() {
        let e = Int4Weight::quantize("layer.w", &[f32::NAN], 1, 1, 32).unwrap_err();
        assert!(e.to_string().contains("layer.w") && e.to_string().contains("non-finite"));
        assert!(Int4Weight::quantize("w", &[0.0; 3], 1, 4, 32).is_err());
        assert!(Int4Weight::quantize("w", &[0.0; 4], 1, 4, 12).is_err());
        assert!(Int4Weight::quantize("w", &[0.0; 4], 1, 4, 8).is_err(), "a group must fill whole 16-byte loads");
    }
}
