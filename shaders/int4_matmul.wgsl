//#if f16
enable f16;
//#endif

// int4 dequant matrix product for prefill and the vision tower: y[m, n] = sum_k x[m, k] * W[n, k].
//
// A workgroup of 16×16 invocations computes a 64×64 block of y, each invocation a 4×4 sub-block
// held in registers: per step of k it reads 4 x values and 4 weights (two 16-byte loads from
// workgroup memory) and does 16 multiply-adds with them, so the loop is bound by arithmetic, not
// by workgroup-memory traffic (one output per invocation would need two loads per multiply-add).
// Per step along k (KSTEP = 16) the workgroup stages a 64×16 block of x and of W in workgroup
// memory, both k-major so the 4 values an invocation needs are one `vec4`; W is dequantised
// once on the way in (each of 128 invocations unpacks one word: 8 weights of one group), so every
// weight nibble is read from memory once per 64 activation rows. x outside [M, K] is staged as 0
// and rows of W are padded to whole groups with zero weights, so odd sizes need no special case
// in the inner loop. 8 KiB of workgroup memory: within WebGPU's 16 KiB default.
//
// Precision (the `f16` flag, where the device has `shader-f16`): x and the dequantised weights
// are staged as f16 and multiplied in f16, which halves workgroup-memory traffic and doubles
// the multiply rate on GPUs with packed f16; each KSTEP block's 16 products per output are
// summed in f16 and then added into f32 accumulators, so a row of 14336
// products loses no more than one block's f16 rounding (rel. L2 ≈ 7e-4 against f32, measured).
// Activations past f16's range (65504) would overflow to infinity; WebLLM's q4f16 builds of the
// same decoders (Phi-3.5-mini, LLaMA-3.1-8B) run on f16 activations throughout. Without the
// flag, all of it is f32.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers, and
// WebGPU forbids one buffer bound both read-only and writable in one dispatch.

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
@group(0) @binding(4) var<uniform> p: Params;

const TILE: u32 = 64u;   // rows of x and of W per workgroup
const KSTEP: u32 = 16u;  // k per staged block: two packed words of a row of W
const T4: u32 = TILE / 4u;

//#if f16
alias stage = f16;
//#else
alias stage = f32;
//#endif

var<workgroup> xs: array<vec4<stage>, KSTEP * T4>;  // [k][m / 4]
var<workgroup> ws: array<vec4<stage>, KSTEP * T4>;  // [k][n / 4]

fn scale_at(i: u32) -> f32 {
    return unpack2x16float(scales[i >> 1u])[i & 1u];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let n0 = wid.x * TILE;
    let m0 = wid.y * TILE;
    let flat = lid.y * 16u + lid.x;
    var acc: array<vec4<f32>, 4>;  // acc[i][j] = y[m0 + 4 lid.y + i, n0 + 4 lid.x + j]
    // The loop holds barriers, so its bound must be uniform: it is, read from a uniform buffer.
    let k_end = p.words_per_row * 8u;

    // Staging roles: x row `flat / 4`, columns 4 (flat % 4) .. +4; W row `flat / 2`, word flat % 2.
    let xm = m0 + flat / 4u;
    let xk = (flat % 4u) * 4u;
    let wn = n0 + flat / 2u;

    for (var k0 = 0u; k0 < k_end; k0 += KSTEP) {
        var xv: vec4<f32>;
        for (var i = 0u; i < 4u; i++) {
            let k = k0 + xk + i;
            xv[i] = select(0.0, x[xm * p.k + k], xm < p.m && k < p.k);
        }
        // Transposed into k-major order: component (xm % 4) of row vector k.
        let slot = (flat / 4u) / 4u;
        let lane = (flat / 4u) % 4u;
        for (var i = 0u; i < 4u; i++) {
            xs[(xk + i) * T4 + slot][lane] = stage(xv[i]);
        }
        if flat < TILE * 2u {
            let word = k0 / 8u + flat % 2u;
            var q = vec4<f32>(0.0);
            var packed = 0x88888888u;  // zero weights past N
            var s = 0.0;
            if wn < p.n {
                packed = w[wn * p.words_per_row + word];
                s = scale_at(wn * p.groups_per_row + word / p.words_per_group);
            }
            let kb = (flat % 2u) * 8u;
            for (var j = 0u; j < 8u; j++) {
                ws[(kb + j) * T4 + (flat / 2u) / 4u][(flat / 2u) % 4u] = stage((f32((packed >> (4u * j)) & 15u) - 8.0) * s);
            }
        }
        workgroupBarrier();
//#if f16
        var block: array<vec4<f16>, 4>;
//#endif
        for (var k = 0u; k < KSTEP; k++) {
            let a = xs[k * T4 + lid.y];
            let b = ws[k * T4 + lid.x];
//#if f16
            block[0] += a.x * b;
            block[1] += a.y * b;
            block[2] += a.z * b;
            block[3] += a.w * b;
//#else
            acc[0] += a.x * b;
            acc[1] += a.y * b;
            acc[2] += a.z * b;
            acc[3] += a.w * b;
//#endif
        }
//#if f16
        for (var i = 0u; i < 4u; i++) { acc[i] += vec4<f32>(block[i]); }
//#endif
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x * 4u + j;
            if m < p.m && n < p.n {
                y[m * p.n + n] = acc[i][j];
            }
        }
    }
}
