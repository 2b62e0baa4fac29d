// int4 dequant matrix product for prefill and the vision tower: y[m, n] = sum_k x[m, k] * W[n, k].
//
// A TILE×TILE workgroup computes a TILE×TILE block of y. Per step along k it stages a
// TILE×KSTEP block of x and a TILE×KSTEP block of W in workgroup memory; W is dequantised once
// on the way in (KSTEP/8 packed words per row, one invocation per word), so every weight nibble
// is read from memory once per block of TILE activation rows instead of once per row. Rows of W
// are padded to whole groups with zero weights, and x outside [M, K] is staged as 0, so odd
// sizes need no special case in the inner loop.
//
// Every binding is read_write: burn's allocator sub-allocates tensors from shared buffers, and
// WebGPU forbids one buffer bound both read-only and writable in one dispatch.
//
// Placeholders: {{ tile }} (TILE; TILE*TILE invocations), {{ kstep }} (a multiple of 8).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    words_per_row: u32,
    groups_per_row: u32,
    words_per_group: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;       // [M, K]
@group(0) @binding(1) var<storage, read_write> w: array<u32>;       // [N, words_per_row]
@group(0) @binding(2) var<storage, read_write> scales: array<u32>;  // [N * groups_per_row] f16, paired
@group(0) @binding(3) var<storage, read_write> y: array<f32>;       // [M, N]
@group(0) @binding(4) var<storage, read_write> p: Params;

const TILE: u32 = {{ tile }}u;
const KSTEP: u32 = {{ kstep }}u;
const WORDS: u32 = KSTEP / 8u;

var<workgroup> xs: array<f32, TILE * KSTEP>;  // [TILE m][KSTEP k]
var<workgroup> ws: array<f32, TILE * KSTEP>;  // [TILE n][KSTEP k]
var<workgroup> k_padded: u32;

fn scale_at(i: u32) -> f32 {
    return unpack2x16float(scales[i >> 1u])[i & 1u];
}

@compute @workgroup_size({{ tile }}, {{ tile }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n0 = wid.x * TILE;
    let m0 = wid.y * TILE;
    let flat = lid.y * TILE + lid.x;
    var acc = 0.0;
    // The loop holds barriers, so its bound must be provably uniform: a value read from a
    // storage buffer is not, and Chrome's compiler rejects the shader (naga lets it through).
    if flat == 0u { k_padded = p.words_per_row * 8u; }
    let k_end = workgroupUniformLoad(&k_padded);

    for (var k0 = 0u; k0 < k_end; k0 += KSTEP) {
        for (var i = flat; i < TILE * KSTEP; i += TILE * TILE) {
            let m = m0 + i / KSTEP;
            let k = k0 + i % KSTEP;
            xs[i] = select(0.0, x[m * p.k + k], m < p.m && k < p.k);
        }
        for (var i = flat; i < TILE * WORDS; i += TILE * TILE) {
            let n = n0 + i / WORDS;
            let word = k0 / 8u + i % WORDS;
            let base = (i / WORDS) * KSTEP + (i % WORDS) * 8u;
            if n < p.n && word < p.words_per_row {
                let packed = w[n * p.words_per_row + word];
                let s = scale_at(n * p.groups_per_row + word / p.words_per_group);
                for (var j = 0u; j < 8u; j++) {
                    ws[base + j] = (f32((packed >> (4u * j)) & 15u) - 8.0) * s;
                }
            } else {
                for (var j = 0u; j < 8u; j++) { ws[base + j] = 0.0; }
            }
        }
        workgroupBarrier();
        for (var k = 0u; k < KSTEP; k++) {
            acc += xs[lid.y * KSTEP + k] * ws[lid.x * KSTEP + k];
        }
        workgroupBarrier();
    }

    let m = m0 + lid.y;
    let n = n0 + lid.x;
    if m < p.m && n < p.n {
        y[m * p.n + n] = acc;
    }
}
