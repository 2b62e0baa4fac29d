//! Embedding lookup from an f16 table on the GPU (`shaders/embedding.wgsl`).

use burn::tensor::Tensor;
use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::source::Buffer::{Read, Write};
use super::source::{Wgsl, grid};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;

/// Rows `ids` of the f16 table `[vocab, cols]` (packed pairs) as f32 `[ids, cols]`. Ids must
/// be below `vocab` (checked here: an out-of-range read would return another row or zeros).
pub fn embedding_f16(gpu: &Gpu, table: &Handle, vocab: usize, cols: usize, ids: &[u32]) -> Result<Tensor<2>> {
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::invalid("prompt", format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    if ids.is_empty() || ids.len() * cols > u32::MAX as usize {
        return Err(Error::shape("embedding", format!("{} ids of width {cols}", ids.len())));
    }
    let pairs = (ids.len() * cols).div_ceil(2);
    let (groups_x, groups_y) = grid(pairs.div_ceil(WORKGROUP as usize));
    let out = gpu.empty_f32(ids.len() * cols);
    let source = Wgsl { name: "embedding_f16", text: include_str!("../../../shaders/embedding.wgsl"), constants: vec![("workgroup_size", WORKGROUP)], flags: vec![] };
    let params = [ids.len() as u32, cols as u32, groups_x as u32, 0];
    source.launch(gpu, CubeDim::new_1d(WORKGROUP), (groups_x, groups_y), &[Read(&gpu.upload_u32(ids)), Read(table), Write(&out)], &params);
    Ok(gpu.tensor_of(out, [ids.len(), cols]))
}

/// [`embedding_f16`] on a fresh random table against the CPU lookup; returns the number of
/// elements that differ (the lookup is exact).
pub async fn check(gpu: &Gpu, vocab: usize, cols: usize, ids: usize, seed: u64) -> Result<usize> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let table: Vec<half::f16> = rng.normal_vec(vocab * cols, 1.0).into_iter().map(half::f16::from_f32).collect();
    let ids: Vec<u32> = (0..ids).map(|_| (rng.next_u64() % vocab as u64) as u32).collect();
    let mut bytes: Vec<u8> = bytemuck::cast_slice(&table).to_vec();
    bytes.resize(bytes.len().next_multiple_of(4), 0);
    let handle = gpu.upload_u32(bytemuck::cast_slice(&bytes));
    let got = crate::gpu::read_f32(embedding_f16(gpu, &handle, vocab, cols, &ids)?).await?;
    let want = ids.iter().flat_map(|&id| table[id as usize * cols..][..cols].iter().map(|v| v.to_f32()));
    Ok(got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count())
}
