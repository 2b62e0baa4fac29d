//#if subgroups_directive
enable subgroups;
//#endif

// int4 dequant matrix-vector product for decode: y[m, n] = sum_k x[m, k] * W[n, k], for the
// M = ROWS activation rows of a decode step (1, or a few when decoding several sequences).
//
// Decode is bound by how fast W streams from memory, so everything serves that read:
// - W is read in 16-byte loads (`vec4<u32>`, 32 nibbles: one whole group at group 32, never two
//   groups, since groups are multiples of 32), consecutive invocations on consecutive loads of a
//   row, so each load instruction of a workgroup is one coalesced burst;
// - a workgroup owns OUTPUTS output features and each invocation loads its slice of all of them,
//   UNROLL steps along the row at a time, before using any: UNROLL × OUTPUTS independent loads
//   in flight per invocation (a row of the decoders' widths is only 3–14 steps of a 32-wide
//   workgroup, so small matrices have few invocations to hide memory latency with), and each x
//   value read (from cache) serves OUTPUTS weights instead of one;
// - each weight is dequantised once and reused for all ROWS activation rows; ROWS is a constant
//   so a decode step (ROWS = 1) does no work for rows it does not have.
// x arrives padded with zeros to the packed row length (whole groups), so it too is read as
// `vec4<f32>` with no bounds checks; the padding nibbles of W are zero weights.
// The partial sums of a workgroup meet in one of two ways (an `//#if` block, chosen by what the
// device offers; both are tested natively on lavapipe):
// - `subgroups`: by `subgroupAdd`, then the subgroups' totals in workgroup memory after one
//   barrier, instead of log2(WG) barriers. The builtins name each subgroup (`subgroup_id`)
//   rather than assuming invocations map onto subgroups in order.
// - otherwise a shared-memory tree: it works on every adapter, whatever its subgroup size
//   (SwiftShader's is 4, lavapipe's 8, NVIDIA's 32). wgpu 30's WebGPU backend has no name for
//   the `subgroups` feature, so in the browser web/src/device.js asks for it.
// Arithmetic is f32; the f16 scales are read as packed pairs with unpack2x16float, which needs
// no `shader-f16`. [Decision] No f16-arithmetic variant: its dequantisation (nibbles OR 0x6400
// as f16 pairs) needs `bitcast<vec2<f16>>(u32)`, which naga 30 (native wgpu) mistypes and
// rejects, and SwiftShader (the browser tests) has no `shader-f16`, so it could be neither
// built natively nor tested anywhere in CI.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers, and
// WebGPU forbids one buffer bound both read-only and writable in one dispatch.
//
// Epilogues, saving a launch each in a decode step: `add_residual` (the decoder's skip
// connection after o and down), and `swiglu` for a gate_up matrix (gate rows, then as many up
// rows): a workgroup then owns OUTPUTS / 2 features, their gate and their up rows, and writes
// silu(gate) · up, half as many outputs as W has rows.
// A prologue, saving the launch before: `rms_norm` (with `stage_x`) multiplies W by
// RMSNorm(x) = x · weight / sqrt(mean(x²) + eps) instead of x. Staging scales x by the norm's
// weight and sums x² as it goes (each workgroup reads all of x anyway), and the epilogue
// divides each sum by the root: a scalar per activation row, so it may come last.
//
// Placeholders: {{ workgroup_size }} (power of two), {{ rows }}, {{ outputs }} (even with
// swiglu), {{ unroll }}, {{ swiglu }} (1 or 0). Flags:
// subgroups, subgroups_directive (the browser needs `enable subgroups;`; naga rejects it and
// takes the builtins without it), stage_x (x through workgroup memory, below), rms_norm.

struct Params {
    m: u32,              // activation rows (= ROWS)
    n: u32,              // output features (rows of W)
    k: u32,              // columns of x (padded to whole groups)
    words_per_row: u32,  // packed u32 words per row of W (a multiple of 4)
    groups_per_row: u32, // scales per row of W
    words_per_group: u32,
    groups_x: u32,       // workgroups along x: the workgroup's index is wid.x + wid.y * groups_x
    add_residual: u32,   // 1: y = x·Wᵀ + residual
    eps: f32,            // rms_norm's
    cols: u32,           // input features, what rms_norm averages over (K, unpadded)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<vec4<f32>>;  // [M, words_per_row * 8]
@group(0) @binding(1) var<storage, read_write> w: array<vec4<u32>>;  // [N, words_per_row / 4]
@group(0) @binding(2) var<storage, read_write> scales: array<u32>;   // [N * groups_per_row] f16, paired
@group(0) @binding(3) var<storage, read_write> y: array<f32>;        // [M, N], or [M, N / 2] with swiglu
@group(0) @binding(4) var<storage, read_write> residual: array<f32>; // [M, N] when add_residual
//#if rms_norm
@group(0) @binding(5) var<storage, read_write> norm_weight: array<vec4<f32>>; // [K], K a multiple of 4
@group(0) @binding(6) var<uniform> p: Params;
//#else
@group(0) @binding(5) var<uniform> p: Params;
//#endif

const WG: u32 = {{ workgroup_size }}u;
const ROWS: u32 = {{ rows }}u;
const OUTPUTS: u32 = {{ outputs }}u;
const UNROLL: u32 = {{ unroll }}u;
const SWIGLU: u32 = {{ swiglu }}u;
// Outputs a workgroup writes per activation row.
const STORED: u32 = OUTPUTS / (1u + SWIGLU);
//#if rms_norm
const NORM: u32 = 1u;
//#else
const NORM: u32 = 0u;
//#endif
// Sums per invocation: OUTPUTS products per activation row, then with rms_norm each row's x².
const SUMS: u32 = ROWS * (OUTPUTS + NORM);

var<workgroup> partial: array<f32, WG * SUMS>;

fn scale_at(i: u32) -> f32 {
    return unpack2x16float(scales[i >> 1u])[i & 1u];
}

// Nibbles 0–3 of `bits` as signed weights times 1, 16, 256, 4096 (each nibble stores q + 8).
// Each nibble is masked where it lies, under the mantissa of 2^23 (0x4B000000), and
// 2^23 + 8·16^c subtracted: exact, with no int-to-float conversion (a quarter of the rate of
// other arithmetic on NVIDIA GPUs) and no shift per weight, only a mask and an OR (one LOP3
// there). The integer pipe is half as wide as the float one on an H100, and at copy speed a
// shift, an AND and an OR per weight would need about 18 T integer operations/s of its ≈ 17.
// The powers of 16 are undone on x instead (`DESCALE`), once per activation and not per
// weight: scaling by powers of two is exact, so every product and sum is what it would be
// with the plain weights, bit for bit.
fn nibbles(bits: u32) -> vec4<f32> {
    let placed = (vec4<u32>(bits) & vec4<u32>(0xFu, 0xF0u, 0xF00u, 0xF000u)) | vec4<u32>(0x4B000000u);
    return bitcast<vec4<f32>>(placed) - vec4<f32>(8388616.0, 8388736.0, 8390656.0, 8421376.0);
}

const DESCALE = vec4<f32>(1.0, 0.0625, 0.00390625, 0.000244140625);

//#if stage_x
// One step's x: the 8 vec4 of each of the WG loads of the step, DESCALE applied. Invocation i
// uses the 8 at 8i..8i+7, 128 bytes from its neighbours': read from global memory, each of those
// 8 load instructions touches a cache line per invocation (32 for a 32-wide workgroup, where a
// coalesced load touches 4), so the cache's throughput in lines may bound the kernel before
// DRAM does (an estimate, not yet measured: BENCHMARKS.md). Staged, x is read in coalesced
// loads, once per workgroup and step. Each invocation's block of
// 8 is rotated by its index, so that the 8 invocations sharing a 16-byte-per-lane access read
// 8 different bank quadruples: vec4 j of block i sits at slot (j + i) mod 8.
var<workgroup> staged: array<vec4<f32>, WG * 8u>;

// Stages `count` vec4 from x[start], vec4 `column` of its row; returns the sum of the squares
// this invocation staged.
fn stage(start: u32, column: u32, count: u32, lid: u32) -> f32 {
    var squares = 0.0;
    for (var i = lid; i < count; i += WG) {
        let raw = x[start + i];
        squares += dot(raw, raw);
//#if rms_norm
        // Past K (x's zero padding to whole groups) any weight will do: the last one.
        let scaled = raw * norm_weight[min(column + i, p.cols / 4u - 1u)];
//#else
        let scaled = raw;
//#endif
        staged[(i & ~7u) | ((i + (i >> 3u)) & 7u)] = scaled * DESCALE;
    }
    return squares;
}

// vec4 j of the 8 that invocation `lid`'s load multiplies.
fn x_at(b: u32, j: u32, lid: u32) -> vec4<f32> {
    return staged[lid * 8u + ((j + lid) & 7u)];
}
//#else
// vec4 j of the 8 that invocation `lid`'s load multiplies: x[b + j], b its first.
fn x_at(b: u32, j: u32, lid: u32) -> vec4<f32> {
    return x[b + j] * DESCALE;
}
//#endif

@compute @workgroup_size({{ workgroup_size }})
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
//#if subgroups
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) sg_count: u32,
//#endif
) {
    let first = (wid.x + wid.y * p.groups_x) * STORED;
    let loads = p.words_per_row / 4u;
    let x_stride = p.words_per_row * 2u;

    var acc = array<f32, SUMS>();

    // Steps are counted for the whole workgroup, not from each invocation's first load, so
    // that every invocation meets the barriers of a staged x equally often.
    for (var step = 0u; step < loads; step += WG * UNROLL) {
        let v0 = step + lid;
        // Every load of the step is issued before any is used. The row's last step may run
        // past its end: those slots re-read the row's last load (always in bounds, a cache
        // hit) and are never added.
        var wv = array<vec4<u32>, UNROLL * OUTPUTS>();
        var s = array<f32, UNROLL * OUTPUTS>();
        for (var u = 0u; u < UNROLL; u++) {
            let v = min(v0 + u * WG, loads - 1u);
            let group = v * 4u / p.words_per_group;
            for (var o = 0u; o < OUTPUTS; o++) {
                let n = weight_row(first, o);
                wv[u * OUTPUTS + o] = w[n * loads + v];
                s[u * OUTPUTS + o] = scale_at(n * p.groups_per_row + group);
            }
        }
        for (var u = 0u; u < UNROLL; u++) {
            let first_load = step + u * WG;
            if first_load >= loads { break; }
            let v = first_load + lid;
            for (var r = 0u; r < ROWS; r++) {
                let b = r * x_stride + v * 8u;
//#if stage_x
                workgroupBarrier(); // the previous step's x is read by everyone
                let squares = stage(r * x_stride + first_load * 8u, first_load * 8u, min(WG, loads - first_load) * 8u, lid);
                if NORM == 1u { acc[ROWS * OUTPUTS + r] += squares; }
                workgroupBarrier();
//#endif
                if v < loads {
                    let x0 = x_at(b, 0u, lid);
                    let x1 = x_at(b, 1u, lid);
                    let x2 = x_at(b, 2u, lid);
                    let x3 = x_at(b, 3u, lid);
                    let x4 = x_at(b, 4u, lid);
                    let x5 = x_at(b, 5u, lid);
                    let x6 = x_at(b, 6u, lid);
                    let x7 = x_at(b, 7u, lid);
                    for (var o = 0u; o < OUTPUTS; o++) {
                        let q = wv[u * OUTPUTS + o];
                        let d = dot(x0, nibbles(q.x)) + dot(x1, nibbles(q.x >> 16u))
                              + dot(x2, nibbles(q.y)) + dot(x3, nibbles(q.y >> 16u))
                              + dot(x4, nibbles(q.z)) + dot(x5, nibbles(q.z >> 16u))
                              + dot(x6, nibbles(q.w)) + dot(x7, nibbles(q.w >> 16u));
                        acc[r * OUTPUTS + o] += d * s[u * OUTPUTS + o];
                    }
                }
            }
        }
    }

//#if subgroups
    for (var i = 0u; i < SUMS; i++) {
        let total = subgroupAdd(acc[i]);
        if sg_lane == 0u { partial[i * WG + sg_id] = total; }
    }
    workgroupBarrier();
    let parts = sg_count;
//#else
    for (var i = 0u; i < SUMS; i++) { partial[i * WG + lid] = acc[i]; }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            for (var i = 0u; i < SUMS; i++) {
                partial[i * WG + lid] += partial[i * WG + lid + stride];
            }
        }
        workgroupBarrier();
    }
    let parts = 1u;
//#endif
    for (var i = lid; i < ROWS * STORED; i += WG) { store(first, i, parts); }
}

// The row of W behind slot o of the workgroup whose first output feature is `first`: the
// feature itself, or with swiglu its gate row (slots below OUTPUTS / 2) or its up row. Features
// past the last (last workgroup only) re-read the last row; their sums are dropped.
fn weight_row(first: u32, o: u32) -> u32 {
    if SWIGLU == 1u {
        let inter = p.n / 2u;
        let feature = min(first + o % STORED, inter - 1u);
        return select(feature, inter + feature, o >= STORED);
    }
    return min(first + o, p.n - 1u);
}

// Slot i's sum over the workgroup: the `parts` subgroup totals, or the tree's root.
fn total(i: u32, parts: u32) -> f32 {
    var sum = partial[i * WG];
    for (var g = 1u; g < parts; g++) { sum += partial[i * WG + g]; }
    return sum;
}

// Output i of the workgroup (activation row i / STORED, feature first + i % STORED), unless past
// the last feature.
fn store(first: u32, i: u32, parts: u32) {
    let r = i / STORED;
    let o = i % STORED;
    let feature = first + o;
    let features = p.n / (1u + SWIGLU);
    if feature >= features { return; }
    let at = r * features + feature;
    // 1 / RMS(x) of the row, or 1.
    var norm = 1.0;
    if NORM == 1u { norm = 1.0 / sqrt(total(ROWS * OUTPUTS + r, parts) / f32(p.cols) + p.eps); }
    let sum = total(r * OUTPUTS + o, parts) * norm;
    if SWIGLU == 1u {
        let up = total(r * OUTPUTS + o + STORED, parts) * norm;
        y[at] = sum / (1.0 + exp(-sum)) * up;
    } else if p.add_residual != 0u {
        y[at] = sum + residual[at];
    } else {
        y[at] = sum;
    }
}
