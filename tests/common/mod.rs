//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fusion::Gpu;

/// The one wgpu device of the test process (lavapipe in CI).
#[allow(dead_code)] // not every test binary uses every helper
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)"))
}

/// `name` under cargo's scratch folder for tests (target/tmp), rid of the last run's files.
#[allow(dead_code)]
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// Not every test binary uses every helper of this module.
#[allow(dead_code)]
pub mod chat;
