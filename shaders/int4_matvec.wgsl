// int4 dequant matrix-vector product for decode: y[m, n] = sum_k x[m, k] * W[n, k], m < M <= MAX_ROWS.
//
// Decode is bound by how fast W streams from memory, so the layout is chosen for that read:
// one workgroup owns one output feature n and walks its packed row (one contiguous run of
// u32 words, 8 nibbles each) with consecutive invocations on consecutive words, so every
// load instruction of the workgroup is one coalesced burst. Each word is dequantised once and
// reused for all M activation rows. The partial sums meet in a shared-memory tree: it works
// on every adapter (SwiftShader has subgroups of 4, lavapipe 8, NVIDIA 32, so nothing here
// assumes a subgroup size). Arithmetic is f32; the f16 scales are read as packed pairs with
// unpack2x16float, which needs no `shader-f16`.
//
// Every binding is read_write: burn's allocator sub-allocates tensors from shared buffers, and
// WebGPU forbids one buffer bound both read-only and writable in one dispatch.
//
// Placeholders: {{ workgroup_size }} (power of two), {{ max_rows }}.

struct Params {
    m: u32,              // activation rows, <= MAX_ROWS
    n: u32,              // output features (rows of W)
    k: u32,              // input features (columns of W, unpadded)
    words_per_row: u32,  // packed u32 words per row of W (row padded to whole groups)
    groups_per_row: u32, // scales per row of W
    words_per_group: u32,
    groups_x: u32,       // workgroups along x: n = wid.x + wid.y * groups_x
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;             // [M, K]
@group(0) @binding(1) var<storage, read_write> w: array<u32>;             // [N, words_per_row]
@group(0) @binding(2) var<storage, read_write> scales: array<u32>;        // [N * groups_per_row] f16, paired
@group(0) @binding(3) var<storage, read_write> y: array<f32>;       // [M, N]
@group(0) @binding(4) var<storage, read_write> p: Params;

const WG: u32 = {{ workgroup_size }}u;
const MAX_ROWS: u32 = {{ max_rows }}u;

var<workgroup> partial: array<f32, WG * MAX_ROWS>;

fn scale_at(i: u32) -> f32 {
    return unpack2x16float(scales[i >> 1u])[i & 1u];
}

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = wid.x + wid.y * p.groups_x;
    // No early return: every invocation must reach the barriers below.
    let in_range = n < p.n;

    var acc: array<f32, MAX_ROWS>;
    for (var r = 0u; r < MAX_ROWS; r++) { acc[r] = 0.0; }

    if in_range {
        let row = n * p.words_per_row;
        for (var word = lid; word < p.words_per_row; word += WG) {
            let packed = w[row + word];
            let s = scale_at(n * p.groups_per_row + word / p.words_per_group);
            // Nibble j holds q + 8 for k = 8 * word + j.
            let lo = vec4<f32>(vec4<u32>(packed, packed >> 4u, packed >> 8u, packed >> 12u) & vec4<u32>(15u)) - 8.0;
            let hi = vec4<f32>(vec4<u32>(packed >> 16u, packed >> 20u, packed >> 24u, packed >> 28u) & vec4<u32>(15u)) - 8.0;
            let k0 = word * 8u;
            if k0 + 8u <= p.k {
                for (var r = 0u; r < p.m; r++) {
                    let b = r * p.k + k0;
                    let xa = vec4<f32>(x[b], x[b + 1u], x[b + 2u], x[b + 3u]);
                    let xb = vec4<f32>(x[b + 4u], x[b + 5u], x[b + 6u], x[b + 7u]);
                    acc[r] += (dot(xa, lo) + dot(xb, hi)) * s;
                }
            } else if k0 < p.k {
                // The row's last word is partly padding (odd K): only touch x inside the row.
                let q = array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
                for (var r = 0u; r < p.m; r++) {
                    var d = 0.0;
                    for (var j = 0u; k0 + j < p.k; j++) { d += x[r * p.k + k0 + j] * q[j]; }
                    acc[r] += d * s;
                }
            }
        }
    }

    for (var r = 0u; r < MAX_ROWS; r++) { partial[r * WG + lid] = acc[r]; }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            for (var r = 0u; r < MAX_ROWS; r++) {
                partial[r * WG + lid] += partial[r * WG + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if in_range && lid < p.m {
        y[lid * p.n + n] = partial[lid * WG];
    }
}
