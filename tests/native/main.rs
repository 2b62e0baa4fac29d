//! The native integration tests, one binary: every module links the same burn, cubecl and wgpu,
//! and a binary per module linked them seven times over (CI's build time). The modules share
//! one GPU device (`common::gpu`); a test that loses or records on a device renews its own.

mod cli;
mod common;
mod conversation;
mod decode_graph;
mod fuzz;
mod golden;
mod kernels;
mod published;
mod soak;
mod tokenizers;
