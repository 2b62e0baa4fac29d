//! Embedding lookup on the GPU (`shaders/embedding.wgsl`), from the table as the model stores it.

use burn::tensor::Tensor;
use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::argmax::Pick;
use super::source::Buffer::{Read, Write};
use super::source::{Wgsl, grid};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;

/// A `[vocab, cols]` table of token embeddings on the GPU.
pub struct Table<'a> {
    pub data: &'a Handle,
    pub vocab: usize,
    pub cols: usize,
    /// f16 in packed pairs (a converted model's), else f32.
    pub f16: bool,
}

/// Where a lookup's ids come from.
pub enum Ids<'a> {
    /// A prompt's, from the CPU.
    Cpu(&'a [u32]),
    /// One id, a greedy pick still on the GPU: the next decode step's token, queued before the
    /// CPU has read it back. NONE (no logit could win) is token 0, as the CPU reads it.
    Picked(&'a Pick),
}

/// Rows `ids` of `table` as f32 `[ids, cols]`. Prompt ids must be below `vocab` (checked: an
/// out-of-range read would return another row or zeros), and a pick must be among at most
/// `vocab` logits.
pub fn embedding(gpu: &Gpu, table: Table, ids: Ids) -> Result<Tensor<2>> {
    let Table { data, vocab, cols, f16 } = table;
    let (rows, ids, picked) = match ids {
        Ids::Cpu(ids) => {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::invalid("prompt", format!("token id {bad} is outside the vocabulary of {vocab}")));
            }
            (ids.len(), gpu.upload_u32(ids), false)
        }
        Ids::Picked(pick) if pick.candidates() > vocab => {
            return Err(Error::shape(
                "embedding",
                format!("a token picked among {} logits, for a table of {vocab} tokens", pick.candidates()),
            ));
        }
        Ids::Picked(pick) => (1, pick.pair().clone(), true),
    };
    if rows == 0 || rows * cols > u32::MAX as usize {
        return Err(Error::shape("embedding", format!("{rows} ids of width {cols}")));
    }
    let pairs = (rows * cols).div_ceil(2);
    let (groups_x, groups_y) = grid(pairs.div_ceil(WORKGROUP as usize));
    let out = gpu.empty_f32(rows * cols);
    let flags = [(!f16).then_some("f32_table"), picked.then_some("picked")].into_iter().flatten().collect();
    let source = Wgsl {
        name: "embedding",
        text: include_str!("../../../shaders/embedding.wgsl"),
        constants: vec![("workgroup_size", WORKGROUP)],
        flags,
    };
    let params = [rows as u32, cols as u32, groups_x as u32, vocab as u32];
    source.launch(
        gpu,
        CubeDim::new_1d(WORKGROUP),
        (groups_x, groups_y),
        &[Read(&ids), Read(data), Write(&out)],
        &params,
    );
    Ok(gpu.tensor_of(out, [rows, cols]))
}

/// [`embedding`] from fresh random tables, f16 and f32, against the CPU lookup: `ids` prompt
/// ids, then single ids picked on the GPU (logits peaking at a random id, at the last one, and
/// all NaN, which is token 0), and a pick among more logits than the table has rows, which
/// must be refused (that pick is dropped unread, as an answer's step taken back is: the reads
/// after it must still work). Returns the number of elements that differ (the lookup is
/// exact), plus one if the refusal did not come.
pub async fn check(gpu: &Gpu, vocab: usize, cols: usize, ids: usize, seed: u64) -> Result<usize> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let values = rng.normal_vec(vocab * cols, 1.0);
    let halves: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
    let prompt: Vec<u32> = (0..ids).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
    let peaks = [Some((rng.next_u64() % vocab as u64) as usize), Some(vocab - 1), None];
    let pick_among = |n: usize, peak: Option<usize>| {
        let logits = (0..n).map(|i| peak.map_or(f32::NAN, |p| f32::from(u8::from(i == p)))).collect();
        super::argmax::pick(gpu, Tensor::from_data(burn::tensor::TensorData::new(logits, [n]), gpu.device()))
    };
    let mut wrong = 0;
    for f16 in [true, false] {
        let data = match f16 {
            true => {
                let mut bytes: Vec<u8> = bytemuck::cast_slice(&halves).to_vec();
                bytes.resize(bytes.len().next_multiple_of(4), 0);
                gpu.upload_u32(bytemuck::cast_slice(&bytes))
            }
            false => gpu.upload_u32(bytemuck::cast_slice(&values)),
        };
        let table = || Table { data: &data, vocab, cols, f16 };
        let row = |id: usize| -> Vec<f32> {
            (id * cols..(id + 1) * cols).map(|i| if f16 { halves[i].to_f32() } else { values[i] }).collect()
        };
        let differ = |got: Vec<f32>, want: Vec<f32>| {
            got.len().abs_diff(want.len()) + got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count()
        };
        let got = crate::gpu::read_f32(embedding(gpu, table(), Ids::Cpu(&prompt))?).await?;
        wrong += differ(got, prompt.iter().flat_map(|&id| row(id as usize)).collect());
        for peak in peaks {
            let pick = pick_among(vocab, peak)?;
            let got = crate::gpu::read_f32(embedding(gpu, table(), Ids::Picked(&pick))?).await?;
            wrong += differ(got, row(peak.unwrap_or(0)));
        }
        wrong += usize::from(embedding(gpu, table(), Ids::Picked(&pick_among(vocab + 1, Some(vocab))?)).is_ok());
    }
    Ok(wrong)
}
