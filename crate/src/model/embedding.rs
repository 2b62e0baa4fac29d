//! The decoder's token embedding table: f32 from a checkpoint, or f16 as a converted model
//! stores it, streamed to the GPU as is (half the memory; an 8B's table is 1 GB in f16).

use burn::tensor::{Int, Tensor, TensorData};
use cubecl::server::Handle;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

pub enum Embedding {
    /// `[V, D]`
    F32(Tensor<2>),
    /// `[V, D]` f16 in packed pairs.
    F16 { table: Handle, vocab: usize, width: usize },
}

impl Embedding {
    /// Rows `ids`; every id must be below the vocabulary size (checked: an out-of-range gather
    /// would silently read another row).
    ///
    /// # Shapes
    /// `ids [S] → [S, D]`
    pub fn forward(&self, gpu: &Gpu, ids: &[u32]) -> Result<Tensor<2>> {
        match self {
            Embedding::F16 { table, vocab, width } => crate::kernels::embedding::embedding_f16(gpu, table, *vocab, *width, ids),
            Embedding::F32(table) => {
                let vocab = table.dims()[0];
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                    return Err(Error::invalid("prompt", format!("token id {bad} is outside the vocabulary of {vocab}")));
                }
                let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
                let n = ids.len();
                Ok(table.clone().select(0, Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), gpu.device())))
            }
        }
    }
}
