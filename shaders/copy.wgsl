// Device-to-device copy: the memory-bandwidth ceiling `fusion bench` measures our kernels
// against, in the same run, on the same device. vec4 loads and stores (16 bytes per
// invocation per step), grid-stride so any size fits one dispatch.
//
// Placeholders: {{ workgroup_size }}.

struct Params {
    len: u32,     // vec4s to copy
    threads: u32, // invocations in the dispatch
}

@group(0) @binding(0) var<storage, read_write> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> p: Params;

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < p.len; i += p.threads) {
        dst[i] = src[i];
    }
}
