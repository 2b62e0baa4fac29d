//! The decoder's token embedding table: f32 from a checkpoint, or f16 as a converted model
//! stores it, streamed to the GPU as is (half the memory; an 8B's table is 1 GB in f16).

use burn::tensor::Tensor;
use cubecl::server::Handle;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::embedding::{Ids, Table, embedding};

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
    pub fn forward(&self, gpu: &Gpu, ids: Ids) -> Result<Tensor<2>> {
        match self {
            Embedding::F16 { table, vocab, width } => {
                embedding(gpu, Table { data: table, vocab: *vocab, cols: *width, f16: true }, ids)
            }
            Embedding::F32(table) => {
                let [vocab, cols] = table.dims();
                let table = gpu.buffer_of("embedding", table.clone())?;
                embedding(gpu, Table { data: &table.handle, vocab, cols, f16: false }, ids)
            }
        }
    }
}
