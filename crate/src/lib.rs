//! FUSION vision-language models (arXiv 2504.09925) on burn's wgpu backend with our own WGSL
//! kernels, natively (Vulkan/Metal) and in the browser (WebGPU, through `wasm`).

#[cfg(not(target_family = "wasm"))]
pub mod bench;
pub mod config;
#[cfg(not(target_family = "wasm"))]
pub mod convert;
pub mod engine;
pub mod error;
pub mod generate;
pub mod gpu;
pub mod image;
pub mod kernels;
pub mod loader;
pub mod manifest;
pub mod model;
pub mod quant;
pub mod rng;
#[cfg(not(target_family = "wasm"))]
pub mod session;
#[cfg(not(target_family = "wasm"))]
pub mod testing;
pub mod tokenizer;
pub mod weights;

#[cfg(target_family = "wasm")]
mod wasm;

pub use error::{Error, Result};
pub use gpu::Gpu;
