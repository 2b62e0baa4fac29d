//! Launchers for our WGSL kernels (`shaders/`), each next to its CPU reference and checks.

pub mod int4_matmul;
pub mod int4_matvec;
mod source;

pub use int4_matmul::int4_matmul;
pub use int4_matvec::{Int4Matrix, int4_matvec};
