// Rotary position embedding (rotate-half layout, the reference's `x·cos + rotate_half(x)·sin`)
// of `heads` heads taken from columns `offset ..` of each row of x [s, stride], written
// head-major [heads, s, hd]: q or k straight out of its projection (Phi-3.5's fused qkv
// included, no slice copied out first) into the layout attention reads, in one launch where
// burn's ops take six plus the copies of the slices. One invocation per output element.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
//
// Placeholders: {{ workgroup_size }}.

struct Params {
    s: u32,        // positions (rows of x)
    heads: u32,
    hd: u32,       // head dim, even
    stride: u32,   // columns of x
    offset: u32,   // column of x where head 0 starts
    total: u32,    // heads * s * hd
    groups_x: u32, // workgroups along x: i = (wid.x + wid.y * groups_x) * WG + lid
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;   // [s, stride]
@group(0) @binding(1) var<storage, read_write> cos: array<f32>; // [s, hd]
@group(0) @binding(2) var<storage, read_write> sin: array<f32>; // [s, hd]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [heads, s, hd]
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = {{ workgroup_size }}u;

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.groups_x) * WG + lid;
    if i >= p.total { return; }
    let d = i % p.hd;
    let r = (i / p.hd) % p.s;
    let h = i / (p.hd * p.s);
    let src = r * p.stride + p.offset + h * p.hd;
    let half = p.hd / 2u;
    // rotate_half(x) = cat(-x[half..], x[..half])
    var rotated: f32;
    if d < half { rotated = -x[src + d + half]; } else { rotated = x[src + d - half]; }
    out[i] = x[src + d] * cos[r * p.hd + d] + rotated * sin[r * p.hd + d];
}
