//! Buffer copy (`shaders/copy.wgsl`): the bandwidth ceiling `fusion bench` reports next to
//! every memory-bound kernel.

use burn::backend::wgpu::SourceKernel;
use cubecl::prelude::{CubeCount, CubeDim};
use cubecl::server::{Handle, KernelArguments};

use super::source::Wgsl;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;
/// Enough workgroups to fill any current GPU; the grid-stride loop covers the rest.
const GROUPS: u32 = 4096;

/// Copy `len` f32s (a multiple of 4) from `src` to `dst`.
pub fn copy(gpu: &Gpu, src: &Handle, dst: &Handle, len: usize) -> Result<()> {
    if len % 4 != 0 || len / 4 > u32::MAX as usize {
        return Err(Error::shape("copy", format!("{len} floats: the copy moves whole vec4s")));
    }
    let groups = GROUPS.min((len / 4).div_ceil(WORKGROUP as usize).max(1) as u32);
    let source = Wgsl { name: "copy", text: include_str!("../../../shaders/copy.wgsl"), constants: vec![("workgroup_size", WORKGROUP)] };
    gpu.client().launch(
        Box::new(SourceKernel::new(source, CubeDim::new_1d(WORKGROUP))),
        CubeCount::Static(groups, 1, 1),
        KernelArguments::new()
            .with_buffer(src.clone().binding())
            .with_buffer(dst.clone().binding())
            .with_buffer(gpu.upload_u32(&[(len / 4) as u32, groups * WORKGROUP]).binding()),
    );
    Ok(())
}

/// [`copy`] of fresh random floats, read back and compared: the number of mismatches.
pub async fn check(gpu: &Gpu, len: usize, seed: u64) -> Result<usize> {
    let data = crate::rng::SplitMix64::new(seed).normal_vec(len, 1.0);
    let src = gpu.upload_u32(bytemuck::cast_slice(&data));
    let dst = gpu.empty_f32(len);
    copy(gpu, &src, &dst, len)?;
    let got = crate::gpu::read_f32(gpu.tensor_of(dst, [len])).await?;
    Ok(got.iter().zip(&data).filter(|(a, b)| a.to_bits() != b.to_bits()).count())
}
