//! Builds layers from a [`TensorSource`], checking every shape. A missing or mis-shaped tensor
//! is an error that names it.

use burn::tensor::{Tensor, TensorData};

use super::embedding::Embedding;
use super::linear::{Linear, LinearWeight};
use super::norm::{LayerNorm, RmsNorm};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::Int4Matrix;
use crate::loader::{HostTensor, TensorSource};
use crate::manifest::DType;
use crate::quant::Int4Weight;

/// How linear weights are kept on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    F32,
    /// Quantised at load time to the int4 group format with this group size.
    Int4 {
        group: usize,
    },
}

pub struct Params<'a> {
    pub source: &'a mut dyn TensorSource,
    pub gpu: &'a Gpu,
    pub format: WeightFormat,
}

impl Params<'_> {
    /// Read `name` and check it has exactly `shape`.
    pub fn host(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let t = self.source.tensor(name)?;
        if t.shape != shape {
            return Err(Error::invalid(name, format!("expected shape {shape:?}, the checkpoint has {:?}", t.shape)));
        }
        Ok(t)
    }

    pub fn upload<const D: usize>(&self, data: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(data, shape), self.gpu.device())
    }

    pub fn vector(&mut self, name: &str, len: usize) -> Result<Tensor<1>> {
        let t = self.host(name, &[len])?;
        Ok(self.upload(t.data, [len]))
    }

    pub fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Tensor<2>> {
        let t = self.host(name, &[rows, cols])?;
        Ok(self.upload(t.data, [rows, cols]))
    }

    /// A PyTorch `Linear` at `prefix` (`prefix.weight [out, in]`, optional `prefix.bias [out]`).
    pub fn linear(&mut self, prefix: &str, in_features: usize, out_features: usize, bias: bool) -> Result<Linear> {
        let name = format!("{prefix}.weight");
        let bias = if bias { Some(self.vector(&format!("{prefix}.bias"), out_features)?) } else { None };
        // Stored int4 (a converted model) is streamed to the GPU as is, never requantised.
        if matches!(self.format, WeightFormat::Int4 { .. }) {
            if let Some(t) = self.source.upload(&name, DType::Int4, self.gpu)? {
                if t.shape != [out_features, in_features] {
                    return Err(Error::invalid(
                        &name,
                        format!("expected shape [{out_features}, {in_features}], the model has {:?}", t.shape),
                    ));
                }
                let (Some(group), Some(scales)) = (t.group, t.scales) else {
                    return Err(Error::invalid(&name, "int4 without scales"));
                };
                let weight = LinearWeight::Int4(Int4Matrix::from_gpu(out_features, in_features, group, t.data, scales));
                return Ok(Linear { weight, bias, in_features, out_features });
            }
            if let Some(q) = self.source.int4(&name)? {
                if (q.rows, q.cols) != (out_features, in_features) {
                    return Err(Error::invalid(
                        &name,
                        format!(
                            "expected shape [{out_features}, {in_features}], the model has [{}, {}]",
                            q.rows, q.cols
                        ),
                    ));
                }
                let weight = LinearWeight::Int4(Int4Matrix::upload(self.gpu, &q));
                return Ok(Linear { weight, bias, in_features, out_features });
            }
        }
        let w = self.host(&name, &[out_features, in_features])?;
        self.linear_from(prefix, w.data, in_features, out_features, bias)
    }

    /// A linear layer from a row-major `[out, in]` weight already on the host, in the load format.
    pub fn linear_from(
        &self,
        name: &str,
        w: Vec<f32>,
        in_features: usize,
        out_features: usize,
        bias: Option<Tensor<1>>,
    ) -> Result<Linear> {
        let weight = match self.format {
            WeightFormat::F32 => return Ok(self.dense_from(w, in_features, out_features, bias)),
            WeightFormat::Int4 { group } => {
                let q = Int4Weight::quantize(name, &w, out_features, in_features, group)?;
                LinearWeight::Int4(Int4Matrix::upload(self.gpu, &q))
            }
        };
        Ok(Linear { weight, bias, in_features, out_features })
    }

    /// A linear layer kept in f32 whatever the load format (the patch embedding: a conv that
    /// `fusion convert` stores in f16, touched once per view).
    pub fn dense_from(&self, w: Vec<f32>, in_features: usize, out_features: usize, bias: Option<Tensor<1>>) -> Linear {
        let weight = LinearWeight::F32(self.upload(w, [out_features, in_features]).transpose());
        Linear { weight, bias, in_features, out_features }
    }

    /// The token embedding: f16 straight from storage when the source keeps it so, else f32.
    pub fn embedding(&mut self, name: &str, vocab: usize, width: usize) -> Result<Embedding> {
        if let Some(t) = self.source.upload(name, DType::F16, self.gpu)? {
            if t.shape != [vocab, width] {
                return Err(Error::invalid(
                    name,
                    format!("expected shape [{vocab}, {width}], the model has {:?}", t.shape),
                ));
            }
            return Ok(Embedding::F16 { table: t.data, vocab, width });
        }
        Ok(Embedding::F32(self.matrix(name, vocab, width)?))
    }

    pub fn layer_norm(&mut self, prefix: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.vector(&format!("{prefix}.weight"), dim)?,
            bias: self.vector(&format!("{prefix}.bias"), dim)?,
            eps,
        })
    }

    pub fn rms_norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: self.vector(name, dim)?, eps })
    }
}
