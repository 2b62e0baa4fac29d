//! FUSION vision-language models (arXiv 2504.09925) on burn's wgpu backend with our own WGSL
//! kernels, natively (Vulkan/Metal) and in the browser (WebGPU, through `wasm`).

// A burn `Tensor` is ~600 bytes inline, so every enum holding one next to something smaller
// (weights f32 or int4, fused or split projections, a decode recording or why there is none)
// is "large"; they are made once per model or per cache, so boxing would buy nothing.
#![allow(clippy::large_enum_variant)]

#[cfg(not(target_family = "wasm"))]
pub mod bench;
#[cfg(not(target_family = "wasm"))]
pub mod check;
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
