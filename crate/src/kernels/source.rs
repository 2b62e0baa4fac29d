//! WGSL files specialised by named placeholders. The placeholder values are also the
//! pipeline cache key, so two specialisations never share a compiled pipeline.

use burn::backend::wgpu::{KernelSource, SourceKernel, SourceTemplate};
use cubecl::prelude::{CubeCount, CubeDim, KernelId};
use cubecl::server::{Handle, KernelArguments, MetadataBindingInfo};

use crate::gpu::Gpu;

/// WebGPU's guaranteed limit on workgroups along one dispatch dimension.
pub(crate) const MAX_WORKGROUPS_PER_DIM: usize = 65535;

/// `groups` workgroups laid out as `(x, y)` within the per-dimension limit; a shader rebuilds the
/// flat index as `wid.x + wid.y * x` (and skips the few past `groups` in the last row).
pub(crate) fn grid(groups: usize) -> (usize, usize) {
    let x = groups.clamp(1, MAX_WORKGROUPS_PER_DIM);
    (x, groups.div_ceil(x))
}

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
    /// and then its `Params` (a whole number of 16-byte rows of u32) as a uniform buffer, which
    /// cubecl fills from its metadata words: it keeps one uniform per distinct content, so a
    /// launch repeated with the same shapes (every decode step) uploads nothing. A storage
    /// buffer made per launch cost a queue write each time: 3× the launch overhead of burn's
    /// own kernels, measured.
    pub fn launch(self, gpu: &Gpu, cube_dim: CubeDim, count: (usize, usize), buffers: &[&Handle], params: &[u32]) {
        debug_assert!(params.len().is_multiple_of(4), "{}: Params must fill whole 16-byte rows", self.name);
        let words = params.chunks(2).map(|p| p[0] as u64 | (p.get(1).copied().unwrap_or(0) as u64) << 32).collect();
        let args = buffers.iter().fold(KernelArguments::new(), |a, b| a.with_buffer((*b).clone().binding()));
        gpu.client().launch(
            Box::new(SourceKernel::new(self, cube_dim)),
            CubeCount::Static(count.0 as u32, count.1 as u32, 1),
            args.with_info(MetadataBindingInfo::custom(words)),
        );
    }
}
