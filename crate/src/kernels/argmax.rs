//! Greedy decoding's argmax on the GPU (`shaders/argmax.wgsl`).

use burn::tensor::{Tensor, TensorData};
use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::source::Buffer::{Read, Write};
use super::source::{MAX_WORKGROUPS_PER_DIM, Wgsl};
use crate::error::{Error, Result};
use crate::generate;
use crate::gpu::{Gpu, Reading};

const WORKGROUP: u32 = 256;
/// Inputs each invocation loads at once: a workgroup covers 2048, so an 8B's vocabulary is 63
/// workgroups, then one.
const ITEMS: u32 = 8;
const NONE: u32 = u32::MAX;

/// The index of the largest logit, as [`generate::argmax`] picks it on the CPU (the first of
/// equals; NaN and -inf never win; 0 when nothing else is left). Reads back 8 bytes.
pub async fn argmax(gpu: &Gpu, logits: Tensor<1>) -> Result<u32> {
    pick(gpu, logits)?.token().await
}

/// [`argmax`] left on the GPU, where the next decode step's embedding lookup reads it
/// (`embedding::Ids::Picked`), its read back already under way.
pub struct Pick {
    /// `[key, index]`, as `argmax.wgsl` writes it.
    pair: Handle,
    /// The logits it was picked among.
    candidates: usize,
    /// `pair`, being read back.
    index: Reading,
}

/// Launch the argmax of `logits` and start reading its index back: the copy is queued and
/// everything before it flushed to the GPU now, not when the token is awaited.
pub fn pick(gpu: &Gpu, logits: Tensor<1>) -> Result<Pick> {
    const OP: &str = "argmax";
    let candidates = logits.dims()[0];
    let mut n = candidates;
    let chunk = (WORKGROUP * ITEMS) as usize;
    if n == 0 || n.div_ceil(chunk) > MAX_WORKGROUPS_PER_DIM {
        return Err(Error::shape(OP, format!("{n} logits (at most {})", chunk * MAX_WORKGROUPS_PER_DIM)));
    }
    let logits = gpu.buffer_of(OP, logits)?;
    let mut input = logits.handle.clone();
    let mut flags = vec![];
    loop {
        let groups = n.div_ceil(chunk);
        // (key, index) pairs, held in an f32 buffer as raw bits.
        let out = gpu.empty_f32(2 * groups);
        let source = Wgsl {
            name: OP,
            text: include_str!("../../../shaders/argmax.wgsl"),
            constants: vec![("workgroup_size", WORKGROUP), ("items", ITEMS)],
            flags: flags.clone(),
        };
        source.launch(gpu, CubeDim::new_1d(WORKGROUP), (groups, 1), &[Read(&input), Write(&out)], &[n as u32, 0, 0, 0]);
        if groups == 1 {
            let index = gpu.read_u32_now(&out);
            return Ok(Pick { pair: out, candidates, index });
        }
        (input, n, flags) = (out, groups, vec!["pairs"]);
    }
}

impl Pick {
    pub(crate) fn pair(&self) -> &Handle {
        &self.pair
    }

    /// How many logits it was picked among: every index is below this.
    pub fn candidates(&self) -> usize {
        self.candidates
    }

    /// The picked token, once read back.
    pub async fn token(self) -> Result<u32> {
        let pair = self.index.await?;
        let index = pair.get(1).copied().unwrap_or(NONE);
        Ok(if index == NONE { 0 } else { index })
    }
}

/// [`argmax`] against [`generate::argmax`] on `n` fresh random logits, and on the same with the
/// cases a reduction gets wrong first: the largest value repeated (the first must win), NaN
/// (at the largest value's place too), infinities, signed zeros, nothing but -inf or NaN.
/// Returns the number of cases that disagree.
pub async fn check(gpu: &Gpu, n: usize, seed: u64) -> Result<usize> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut at = || (rng.next_u64() % n as u64) as usize;
    let random = {
        let mut r = crate::rng::SplitMix64::new(seed ^ 0x5eed);
        r.normal_vec(n, 4.0)
    };
    let with = |edits: &[(usize, f32)]| {
        let mut v = random.clone();
        for &(i, x) in edits {
            v[i] = x;
        }
        v
    };
    let top = random.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (a, b, c) = (at(), at(), at());
    let cases = [
        random.clone(),
        with(&[(a, top + 1.0), (b, top + 1.0)]),
        with(&[(a, f32::NAN), (b, f32::NAN), (c, top + 2.0)]),
        with(&[(generate::argmax(&random) as usize, f32::NAN)]),
        with(&[(a, f32::INFINITY), (b, f32::INFINITY), (c, f32::NEG_INFINITY)]),
        random
            .iter()
            .map(|v| -v.abs() - 1.0)
            .enumerate()
            .map(|(i, v)| {
                if i == a {
                    -0.0
                } else if i == b {
                    0.0
                } else {
                    v
                }
            })
            .collect(),
        vec![f32::NEG_INFINITY; n],
        vec![f32::NAN; n],
    ];
    let mut wrong = 0;
    for logits in cases {
        let want = generate::argmax(&logits);
        let got = argmax(gpu, Tensor::from_data(TensorData::new(logits, [n]), gpu.device())).await?;
        wrong += usize::from(got != want);
    }
    Ok(wrong)
}
