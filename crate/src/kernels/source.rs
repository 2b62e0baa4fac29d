//! WGSL files specialised by named placeholders. The placeholder values are also the
//! pipeline cache key, so two specialisations never share a compiled pipeline.

use burn::backend::wgpu::{KernelSource, SourceTemplate};
use cubecl::prelude::KernelId;

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
