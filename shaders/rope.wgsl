// Rotary position embedding (rotate-half layout, the reference's `x·cos + rotate_half(x)·sin`)
// of a decoder layer's new positions, fused with the KV-cache write, in one launch:
// - q's heads, rotated, into a new head-major [heads, s, hd] (the layout attention reads);
// - k's heads, rotated, and v's heads, copied, into rows start .. start + s of the cache's
//   [kv_heads, capacity, hd] buffers, in place. `start` is read from a buffer, not from the
//   parameters, so a recorded decode step replays at every position (model/decode_graph.rs).
// q, k and v are read at their column offsets in one projection output, as Phi-3.5's fused qkv
// comes out (LLaMA's when its projections are stacked at load). One binding, not three: WebGPU
// forbids binding overlapping ranges of a buffer twice where one is writable, and every binding
// here is (below). A decode step is bound by launches (BENCHMARKS.md): this is one where the
// separate rotations and cache writes were four. One invocation per element written.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
//
// Placeholders: {{ workgroup_size }}.

struct Params {
    s: u32,        // new positions (rows of q, k, v)
    heads: u32,
    kv_heads: u32,
    hd: u32,       // head dim, even
    stride: u32,   // columns of x
    q_offset: u32, // column of x where q's head 0 starts
    k_offset: u32,
    v_offset: u32,
    capacity: u32, // cache rows per kv head
    total: u32,    // (heads + 2 kv_heads) * s * hd
    groups_x: u32, // workgroups along x: i = (wid.x + wid.y * groups_x) * WG + lid
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;       // [s, stride]
@group(0) @binding(1) var<storage, read_write> cos: array<f32>;     // [s, hd]
@group(0) @binding(2) var<storage, read_write> sin: array<f32>;     // [s, hd]
@group(0) @binding(3) var<storage, read_write> q_out: array<f32>;   // [heads, s, hd]
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>; // [kv_heads, capacity, hd]
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>; // [kv_heads, capacity, hd]
@group(0) @binding(6) var<storage, read_write> positions: array<u32>; // [start, ...]
@group(0) @binding(7) var<uniform> p: Params;

const WG: u32 = {{ workgroup_size }}u;

// Element d of position r's rotated head starting at column `col` of x
// (rotate_half(x) = cat(-x[half..], x[..half])).
fn rotated(r: u32, col: u32, d: u32) -> f32 {
    let half = p.hd / 2u;
    let partner = select(d - half, d + half, d < half);
    let sign = select(1.0, -1.0, d < half);
    let row = r * p.stride + col;
    return x[row + d] * cos[r * p.hd + d] + sign * x[row + partner] * sin[r * p.hd + d];
}

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.groups_x) * WG + lid;
    if i >= p.total { return; }
    let d = i % p.hd;
    let r = (i / p.hd) % p.s;
    let head = i / (p.hd * p.s); // q heads, then k heads, then v heads
    if head < p.heads {
        q_out[i] = rotated(r, p.q_offset + head * p.hd, d);
        return;
    }
    let kv = (head - p.heads) % p.kv_heads;
    let row = (kv * p.capacity + positions[0] + r) * p.hd + d;
    if head < p.heads + p.kv_heads {
        k_cache[row] = rotated(r, p.k_offset + kv * p.hd, d);
    } else {
        v_cache[row] = x[r * p.stride + p.v_offset + kv * p.hd + d];
    }
}
