//#if f16
enable f16;
//#endif

// int4 dequant matrix product for prefill and the vision tower: y[m, n] = sum_k x[m, k] * W[n, k].
//
// A workgroup of 8×8 invocations computes a 64×64 block of y, each invocation an 8×8 sub-block
// held in registers: rows 4ty .. 4ty+3 and 32+4ty .. 32+4ty+3 of the block, columns 4tx .. and
// 32+4tx .. likewise. Per step of k it reads 8 x values and 8 weights (four 16-byte loads from
// workgroup memory) and does 64 multiply-adds with them, so the loop is bound by arithmetic, not
// by workgroup-memory traffic. (The 16×16 invocations of 4×4 outputs this replaces did 16
// multiply-adds per two loads, and ran at 13–16 TFLOP/s in f32 on an H100, about 22 % of its
// peak.) The split in two halves 32 apart, rather than 8 adjacent rows and columns, keeps the 8
// invocations of a row of the grid on 8 consecutive vec4s: one conflict-free read.
//
// Per step along k (KSTEP = 16) the workgroup stages a 64×16 block of x and of W in workgroup
// memory, both k-major so the 4 values an invocation needs are one `vec4`; W is dequantised once
// on the way in (each invocation unpacks the two words of one row, one 8-byte load: 16 weights
// of one group), so every weight nibble is read from memory once per 64 activation rows. x is
// read with 16 consecutive invocations on the 16 k of a row, so one load instruction touches the
// cache lines of 2 rows, not 32 (loads that scattered would keep the load/store pipe as busy as
// the arithmetic); its staged rows are padded by one vec4 so those transposing stores fall on
// distinct banks but for pairs. The next step's x and W are loaded into registers while this
// step is computed, so the global loads' latency hides behind arithmetic rather than stalling
// at the barrier. x outside [M, K] is staged as 0 and rows of W are padded to whole groups with
// zero weights, so odd sizes need no special case in the inner loop. 8.25 KiB of workgroup
// memory (4.1 in f16): within WebGPU's 16 KiB default.
//
// Split along k: a GEMM of few 64×64 blocks (a short follow-up prompt's 32 rows: one block row,
// 48 workgroups for a 3072-wide output; the vision tower's 1152-wide projections at 729 rows: 216)
// leaves most of a large GPU idle, each workgroup walking the whole of k (8192 for the 3B's down
// projection: 512 dependent steps). With `splits` > 1 the grid's y also counts splits: each
// workgroup sums `steps_per_split` steps of k into its own [M, N] slice of y, and the slices are
// added after (`int4_matmul.rs`). A split whose k range is empty stores zeros.
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
    splits: u32,
    steps_per_split: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;       // [M, K]
@group(0) @binding(1) var<storage, read_write> w: array<vec2<u32>>; // [N, words_per_row / 2]
@group(0) @binding(2) var<storage, read_write> scales: array<u32>;  // [N * groups_per_row] f16, paired
@group(0) @binding(3) var<storage, read_write> y: array<f32>;       // [splits, M, N]
@group(0) @binding(4) var<uniform> p: Params;

const TILE: u32 = 64u;   // rows of x and of W per workgroup
const KSTEP: u32 = 16u;  // k per staged block: two packed words of a row of W
const T4: u32 = TILE / 4u;
const HALF4: u32 = T4 / 2u; // vec4s between an invocation's two halves
const XS: u32 = T4 + 1u;    // staged x: vec4s per k, one of them padding

//#if f16
alias stage = f16;
//#else
alias stage = f32;
//#endif

var<workgroup> xs: array<vec4<stage>, KSTEP * XS>;  // [k][m / 4], padded
var<workgroup> ws: array<vec4<stage>, KSTEP * T4>;  // [k][n / 4]

fn scale_at(i: u32) -> f32 {
    return unpack2x16float(scales[i >> 1u])[i & 1u];
}

// What one invocation stages per step: column `flat % 16` of rows `flat / 16 + 4j` of the x block
// (KSTEP values), and row `flat` of the W block (two words and their group's scale).
struct Staged {
    xv: array<f32, KSTEP>,
    words: vec2<u32>,
    scale: f32,
}

fn load(m0: u32, n0: u32, flat: u32, k0: u32) -> Staged {
    var s = Staged();
    let k = k0 + flat % KSTEP;
    for (var j = 0u; j < KSTEP; j++) {
        let m = m0 + flat / KSTEP + 4u * j;
        s.xv[j] = select(0.0, x[m * p.k + k], m < p.m && k < p.k);
    }
    s.words = vec2<u32>(0x88888888u);  // zero weights past N
    s.scale = 0.0;
    let n = n0 + flat;
    if n < p.n {
        s.words = w[(n * p.words_per_row + k0 / 8u) / 2u];
        s.scale = scale_at(n * p.groups_per_row + (k0 / 8u) / p.words_per_group);
    }
    return s;
}

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let m_blocks = (p.m + TILE - 1u) / TILE;
    let split = wid.y / m_blocks;
    let n0 = wid.x * TILE;
    let m0 = (wid.y % m_blocks) * TILE;
    let flat = lid.y * 8u + lid.x;
    // acc[2r + h]: row r of the invocation's 8 (4ty + r, then 32 + 4ty + r - 4), column half h.
    var acc = array<vec4<f32>, 16>();
    // The loop holds barriers, so its bounds must be uniform: they are, from the uniform buffer
    // and the workgroup's id.
    let k_begin = split * p.steps_per_split * KSTEP;
    let k_end = min(k_begin + p.steps_per_split * KSTEP, p.words_per_row * 8u);

    var next = load(m0, n0, flat, k_begin);
    for (var k0 = k_begin; k0 < k_end; k0 += KSTEP) {
        // x transposed into the k-major block; row `flat` of W dequantised.
        for (var j = 0u; j < KSTEP; j++) {
            let m = flat / KSTEP + 4u * j;
            xs[(flat % KSTEP) * XS + m / 4u][m % 4u] = stage(next.xv[j]);
        }
        for (var j = 0u; j < KSTEP; j++) {
            let nibble = (next.words[j / 8u] >> (4u * (j % 8u))) & 15u;
            ws[j * T4 + flat / 4u][flat % 4u] = stage((f32(nibble) - 8.0) * next.scale);
        }
        workgroupBarrier();
        if k0 + KSTEP < k_end {
            next = load(m0, n0, flat, k0 + KSTEP);
        }
//#if f16
        var block = array<vec4<f16>, 16>();
//#endif
        for (var k = 0u; k < KSTEP; k++) {
            let a0 = xs[k * XS + lid.y];
            let a1 = xs[k * XS + lid.y + HALF4];
            let b0 = ws[k * T4 + lid.x];
            let b1 = ws[k * T4 + lid.x + HALF4];
            for (var r = 0u; r < 4u; r++) {
//#if f16
                block[2u * r] += a0[r] * b0;
                block[2u * r + 1u] += a0[r] * b1;
                block[2u * r + 8u] += a1[r] * b0;
                block[2u * r + 9u] += a1[r] * b1;
//#else
                acc[2u * r] += a0[r] * b0;
                acc[2u * r + 1u] += a0[r] * b1;
                acc[2u * r + 8u] += a1[r] * b0;
                acc[2u * r + 9u] += a1[r] * b1;
//#endif
            }
        }
//#if f16
        for (var i = 0u; i < 16u; i++) { acc[i] += vec4<f32>(block[i]); }
//#endif
        workgroupBarrier();
    }

    let slice = split * p.m * p.n;
    for (var r = 0u; r < 8u; r++) {
        let m = m0 + (r / 4u) * (TILE / 2u) + lid.y * 4u + r % 4u;
        for (var h = 0u; h < 2u; h++) {
            for (var j = 0u; j < 4u; j++) {
                let n = n0 + h * (TILE / 2u) + lid.x * 4u + j;
                if m < p.m && n < p.n {
                    y[slice + m * p.n + n] = acc[2u * r + h][j];
                }
            }
        }
    }
}
