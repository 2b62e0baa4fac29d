//! Helpers shared by the integration tests.

use std::sync::OnceLock;

use fusion::Gpu;

/// The one wgpu device of the test process (lavapipe in CI).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)"))
}

/// Not every test binary uses every helper of this module.
#[allow(dead_code)]
pub mod chat;
