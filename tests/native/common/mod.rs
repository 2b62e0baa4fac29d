//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fusion::Gpu;

/// The one wgpu device of the test process (lavapipe in CI).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().expect("a Vulkan adapter (install mesa-vulkan-drivers for lavapipe)"))
}

/// `name` under cargo's scratch folder for tests (target/tmp), rid of the last run's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::remove_dir_all(&dir).ok();
    dir
}

pub mod chat;

/// A file the tests carry, by its path under `tests/` (the fixtures, the photos).
pub fn test_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests").join(path)
}
