//! Buffer copy (`shaders/copy.wgsl`): the bandwidth ceiling `fusion bench` reports next to
//! every memory-bound kernel, and the loader's way to place a streamed chunk in its tensor.

use cubecl::prelude::CubeDim;
use cubecl::server::Handle;

use super::source::Buffer::{Read, ReadWrite};
use super::source::Wgsl;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const WORKGROUP: u32 = 256;
/// Enough workgroups to fill any current GPU; the grid-stride loop covers the rest.
const GROUPS: u32 = 4096;

/// Copy `len` 4-byte words from the start of `src` to `dst` at word `dst_offset`; both
/// multiples of 4 (the copy moves whole vec4s).
pub fn copy(gpu: &Gpu, src: &Handle, dst: &Handle, len: usize, dst_offset: usize) -> Result<()> {
    if !len.is_multiple_of(4) || !dst_offset.is_multiple_of(4) || (dst_offset + len) / 4 > u32::MAX as usize {
        return Err(Error::shape("copy", format!("{len} words at {dst_offset}: the copy moves whole vec4s")));
    }
    let groups = GROUPS.min((len / 4).div_ceil(WORKGROUP as usize).max(1) as u32);
    let source = Wgsl {
        name: "copy",
        text: include_str!("../../../shaders/copy.wgsl"),
        constants: vec![("workgroup_size", WORKGROUP)],
        flags: vec![],
    };
    source.launch(
        gpu,
        CubeDim::new_1d(WORKGROUP),
        (groups as usize, 1),
        &[Read(src), ReadWrite(dst)],
        &[(len / 4) as u32, groups * WORKGROUP, (dst_offset / 4) as u32, 0],
    );
    Ok(())
}

/// [`copy`] of fresh random floats into the middle of a buffer, read back and compared: the
/// number of wrong words (the words around the copy must keep their values).
pub async fn check(gpu: &Gpu, len: usize, seed: u64) -> Result<usize> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let data = rng.normal_vec(len, 1.0);
    let mut want = rng.normal_vec(len + 8, 1.0);
    let dst = gpu.upload_u32(bytemuck::cast_slice(&want));
    want[4..4 + len].copy_from_slice(&data);
    copy(gpu, &gpu.upload_u32(bytemuck::cast_slice(&data)), &dst, len, 4)?;
    let got = crate::gpu::read_f32(gpu.tensor_of(dst, [len + 8])).await?;
    Ok(got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count())
}
