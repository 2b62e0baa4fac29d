//! `mlp2x_gelu` projectors (spec §4): `mm_projector` maps the connector's 3C features into the
//! LLM (3C → D → D); `aux_projector` maps question embeddings into the tower (D → C → C).
//! Both are `Linear + bias, exact-erf GELU, Linear + bias`.

use burn::tensor::{Tensor, activation::gelu};

use super::linear::Linear;
use super::params::Params;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::weights;

pub struct Projector {
    fc0: Linear,
    fc2: Linear,
}

impl Projector {
    pub fn load_mm(p: &mut Params, vision_width: usize, llm_width: usize) -> Result<Self> {
        Ok(Self {
            fc0: p.linear(&weights::mm_projector(0), 3 * vision_width, llm_width, true)?,
            fc2: p.linear(&weights::mm_projector(2), llm_width, llm_width, true)?,
        })
    }

    pub fn load_aux(p: &mut Params, llm_width: usize, vision_width: usize) -> Result<Self> {
        Ok(Self {
            fc0: p.linear(&weights::aux_projector(0), llm_width, vision_width, true)?,
            fc2: p.linear(&weights::aux_projector(2), vision_width, vision_width, true)?,
        })
    }

    /// # Shapes
    /// `x [..., in] → [..., out]`
    pub fn forward<const D: usize>(&self, gpu: &Gpu, x: Tensor<D>) -> Result<Tensor<D>> {
        self.fc2.forward(gpu, gelu(self.fc0.forward(gpu, x)?))
    }
}
