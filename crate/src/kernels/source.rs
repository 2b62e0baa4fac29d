//! WGSL files specialised by named placeholders. The placeholder values are also the
//! pipeline cache key, so two specialisations never share a compiled pipeline.

use burn::backend::wgpu::{KernelSource, SourceKernel, SourceTemplate};
use cubecl::prelude::{CubeCount, CubeDim, KernelId};
use cubecl::server::{Handle, KernelArguments};

use crate::gpu::Gpu;

pub(crate) struct Wgsl {
    pub name: &'static str,
    pub text: &'static str,
    pub constants: Vec<(&'static str, u32)>,
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        self.constants
            .iter()
            .fold(SourceTemplate::new(self.text), |t, (k, v)| t.register(*k, v.to_string()))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.constants.clone()))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

impl Wgsl {
    /// Launch on `count` workgroups of `cube_dim`. Every shader here binds its buffers in order
    /// and then its `Params` words, uploaded from `params`.
    pub fn launch(self, gpu: &Gpu, cube_dim: CubeDim, count: (usize, usize), buffers: &[&Handle], params: &[u32]) {
        let args = buffers.iter().fold(KernelArguments::new(), |a, b| a.with_buffer((*b).clone().binding()));
        gpu.client().launch(
            Box::new(SourceKernel::new(self, cube_dim)),
            CubeCount::Static(count.0 as u32, count.1 as u32, 1),
            args.with_buffer(gpu.upload_u32(params).binding()),
        );
    }
}
