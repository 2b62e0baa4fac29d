//! WGSL files specialised by named placeholders and by `//#if flag` blocks. The placeholder
//! values and flags are also the pipeline cache key, so two specialisations never share a
//! compiled pipeline.

use burn::backend::wgpu::{KernelSource, SourceKernel, SourceTemplate};
use cubecl::ir::attributes::BufferIOAttr;
use cubecl::prelude::{CubeCount, CubeDim, KernelId};
use cubecl::server::{Handle, KernelArguments, MetadataBindingInfo};

use crate::gpu::Gpu;

/// WebGPU's guaranteed limit on workgroups along one dispatch dimension.
pub(crate) const MAX_WORKGROUPS_PER_DIM: usize = 65535;

/// `groups` workgroups laid out as `(x, y)` within the per-dimension limit; a shader rebuilds the
/// flat index as `wid.x + wid.y * x` (and skips the few past `groups` in the last row).
pub(crate) fn grid(groups: usize) -> (usize, usize) {
    let x = groups.clamp(1, MAX_WORKGROUPS_PER_DIM);
    (x, groups.div_ceil(x))
}

/// A buffer a kernel binds, and what the kernel does with it. The shaders declare every storage
/// binding `read_write` (WebGPU's aliasing rule: see `int4_matvec.wgsl`), so this is what tells
/// cubecl: it checks what a launch reads before running it, and marks what a launch writes as
/// never written when the launch never runs (a failed launch, a refused decode-step recording).
/// Declared, a model's weights stay readable through both.
#[derive(Clone, Copy)]
pub(crate) enum Buffer<'a> {
    Read(&'a Handle),
    /// Written whole: a launch into it repairs it.
    Write(&'a Handle),
    /// Read, or written in part (a KV cache's new rows).
    ReadWrite(&'a Handle),
}

impl Buffer<'_> {
    fn declared(self) -> (Handle, BufferIOAttr) {
        match self {
            Buffer::Read(h) => (h.clone(), BufferIOAttr::ReadOnly),
            Buffer::Write(h) => (h.clone(), BufferIOAttr::WriteOnly),
            Buffer::ReadWrite(h) => (h.clone(), BufferIOAttr::ReadWrite),
        }
    }
}

pub(crate) struct Wgsl {
    pub name: &'static str,
    pub text: &'static str,
    pub constants: Vec<(&'static str, u32)>,
    /// The `//#if` blocks to keep ([`select_blocks`]).
    pub flags: Vec<&'static str>,
}

impl KernelSource for Wgsl {
    fn source(&self) -> SourceTemplate {
        self.constants
            .iter()
            .fold(SourceTemplate::new(select_blocks(self.text, &self.flags)), |t, (k, v)| t.register(*k, v.to_string()))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.name, self.constants.clone(), self.flags.clone()))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// The lines of `text` without the `//#if flag` … `//#else` … `//#endif` blocks (which may
/// nest) whose condition does not hold. WGSL has no preprocessor, and a shader that names an
/// `f16` type or a subgroup builtin does not compile on a device without them, even in a
/// branch never taken, so a kernel's variants are chosen here, before compiling.
pub(crate) fn select_blocks(text: &str, flags: &[&str]) -> String {
    let mut keep = vec![true];
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let directive = line.trim_start();
        if let Some(flag) = directive.strip_prefix("//#if ") {
            let outer = keep.last().copied().unwrap_or(true);
            keep.push(outer && flags.contains(&flag.trim()));
        } else if directive.starts_with("//#else") {
            let inner = keep.pop().unwrap_or(true);
            let outer = keep.last().copied().unwrap_or(true);
            keep.push(outer && !inner);
        } else if directive.starts_with("//#endif") {
            keep.pop();
        } else if keep.last().copied().unwrap_or(true) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The `//#if` flags of a kernel's subgroup variant, or of its baseline (no flags).
pub(crate) fn subgroup_flags(subgroups: bool) -> Vec<&'static str> {
    match (subgroups, cfg!(target_family = "wasm")) {
        (false, _) => vec![],
        // Tint (the browser) requires `enable subgroups;`; naga (native) rejects the directive
        // as unimplemented and takes the builtins without it.
        (true, true) => vec!["subgroups", "subgroups_directive"],
        (true, false) => vec!["subgroups"],
    }
}

impl Wgsl {
    /// Launch on `count` workgroups of `cube_dim`. Every shader here binds its buffers in order
    /// and then its `Params` (a whole number of 16-byte rows of u32) as a uniform buffer, which
    /// cubecl fills from its metadata words: it keeps one uniform per distinct content, so a
    /// launch repeated with the same shapes (every decode step) uploads nothing. A storage
    /// buffer made per launch cost a queue write each time: 3× the launch overhead of burn's
    /// own kernels, measured.
    pub fn launch(self, gpu: &Gpu, cube_dim: CubeDim, count: (usize, usize), buffers: &[Buffer], params: &[u32]) {
        debug_assert!(params.len().is_multiple_of(4), "{}: Params must fill whole 16-byte rows", self.name);
        let words = params.chunks(2).map(|p| p[0] as u64 | (p.get(1).copied().unwrap_or(0) as u64) << 32).collect();
        let args = buffers.iter().fold(KernelArguments::new(), |a, b| {
            let (handle, io) = b.declared();
            a.with_buffer_io(handle.binding(), io)
        });
        gpu.client().launch(
            Box::new(SourceKernel::new(self, cube_dim)),
            CubeCount::Static(count.0 as u32, count.1 as u32, 1),
            args.with_info(MetadataBindingInfo::custom(words)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::select_blocks;

    /// Every function-scope `var` in `shaders/` is declared with an initializer. WGSL zeroes a
    /// `var` declared without one each time its declaration runs, once per iteration inside a
    /// loop, but Tint (Chromium 156, and Dawn for Node) zeroes it once per invocation: a
    /// per-step accumulator declared that way in the f16 GEMM summed every earlier step again
    /// in the browser (rel. L2 error 2.3 to 12.6 under Dawn) while naga, which honours the rule since
    /// wgpu 30, got it right. `var x = T();` is the zero value on both.
    #[test]
    fn shader_variables_are_initialised_where_declared() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders");
        let mut offenders = Vec::new();
        for entry in std::fs::read_dir(dir).expect("the shaders folder") {
            let path = entry.expect("a shader file").path();
            let text = std::fs::read_to_string(&path).expect("a readable shader");
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("").trim_start();
                if code.starts_with("var ") && !code.contains('=') {
                    offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
        assert!(offenders.is_empty(), "declare these with an initializer (`var x = T();`):\n{}", offenders.join("\n"));
    }

    #[test]
    fn blocks_are_kept_by_their_flags_and_nest() {
        let text = "a\n//#if x\nb\n  //#if y\nc\n  //#else\nd\n  //#endif\n//#else\ne\n//#endif\nf\n";
        assert_eq!(select_blocks(text, &[]), "a\ne\nf\n");
        assert_eq!(select_blocks(text, &["x"]), "a\nb\nd\nf\n");
        assert_eq!(select_blocks(text, &["x", "y"]), "a\nb\nc\nf\n");
        assert_eq!(select_blocks(text, &["y"]), "a\ne\nf\n");
    }
}
