// Device-to-device copy into a buffer at an offset: the memory-bandwidth ceiling `fusion bench`
// measures our kernels against (same run, same device), and how the loader assembles a
// tensor from the chunks it streams. vec4 loads and stores (16 bytes per invocation per
// step), grid-stride so any size fits one dispatch.
//
// Placeholders: {{ workgroup_size }}.

struct Params {
    len: u32,        // vec4s to copy
    threads: u32,    // invocations in the dispatch
    dst_offset: u32, // in vec4s
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < p.len; i += p.threads) {
        dst[p.dst_offset + i] = src[i];
    }
}
