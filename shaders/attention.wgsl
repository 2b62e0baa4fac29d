// Fused attention over many query rows: decoder prefill (causal after `past` cached positions,
// GQA) and the vision tower (non-causal, additive key bias for padded question tokens).
// out = softmax(q·kᵀ·scale + bias)·v, flash-style in FlashAttention-2's loop order: keys stream
// through workgroup memory in tiles of BC, each query row keeps a running max, a running sum and
// its output accumulator (online softmax), so the [rows, keys] score matrix never exists in
// memory.
//
// Tiling. A workgroup of 64 invocations owns BR = 32 consecutive query rows of one head, as an
// 8×8 grid: invocation (rg, cg) = (lid / 8, lid % 8) owns rows 4rg .. 4rg + 3 of the block. Per
// tile of keys it computes its part of two small matrix products with register blocks, as
// int4_matmul.wgsl does, so that each workgroup-memory read feeds several multiply-adds:
//   S = Q·Kᵀ: its 4 rows × keys cg, cg + 8, cg + 16, cg + 24; per vec4 of head dims, 8 reads
//     and 64 multiply-adds. Q and K are staged DC4 vec4s of head dims at a time.
//   O += P·V: its 4 rows × the vec4 columns cg, cg + 8, … of the head (NCOL of them); per key,
//     1 + NCOL reads and 16·NCOL multiply-adds. V is staged VC keys at a time, in the space Q
//     and K used.
// The kernel this replaces gave each invocation one whole row (one read per 4 multiply-adds) and
// ran at 0.50–0.74× burn's two-matmul attention on an H100.
//
// Softmax. Row maxima meet in workgroup memory (8 partial maxima per row); each invocation then
// turns its own 16 scores into probabilities, and the row sums come free in the P·V loop, where
// every invocation of a row group reads all of its rows' probabilities anyway. The score scale
// is folded into q. Keys a row must not see get probability 0 explicitly (and the lowest score
// for the maximum); the caller's bias masks with f32::MIN, so no infinity appears anywhere and
// exp() never sees inf − inf. K and V rows past the keys used are staged as 0, never read: a
// cache's spare rows may hold anything.
//
// Banks. Staged Q and K rows are PAD4 vec4s apart, an odd number, so the 8 keys (or 4 query
// rows) read at once start in distinct banks.
//
// Workgroup memory: (BR + BC)·PAD4 vec4s staged (PAD4 ≤ 9: 9 KiB) + 4 KiB of probabilities + 1 KiB
// of partial maxima, within WebGPU's guaranteed 16 KiB.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
// Placeholders: {{ head_dim }}, {{ dims_per_step }} (DC4), {{ value_rows }} (VC), {{ stage }}.

struct Params {
    s: u32,        // query rows per head
    t: u32,        // keys per kv head
    group: u32,    // query heads per kv head (GQA): head h reads kv head h / group
    past: u32,     // causal: row i sees keys 0 ..= past + i
    causal: u32,
    has_bias: u32,
    scale: f32,
    kv_stride: u32, // rows between kv heads in k and v: the cache's capacity (>= t)
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;    // [heads, s, HD]
@group(0) @binding(1) var<storage, read_write> k: array<f32>;    // [kv_heads, kv_stride, HD], t rows used
@group(0) @binding(2) var<storage, read_write> v: array<f32>;    // [kv_heads, kv_stride, HD]
@group(0) @binding(3) var<storage, read_write> bias: array<f32>; // [t] when has_bias
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // [heads, s, HD]
@group(0) @binding(5) var<uniform> p: Params;

const BR: u32 = 32u;  // query rows per workgroup
const BC: u32 = 32u;  // keys per tile
const HD: u32 = {{ head_dim }}u;
const HD4: u32 = (HD + 3u) / 4u;       // head dims in vec4s; the tail of the last one is zero
const DC4: u32 = {{ dims_per_step }}u; // vec4s of head dims staged per step of S
const STEPS: u32 = (HD4 + DC4 - 1u) / DC4;
const PAD4: u32 = DC4 | 1u;            // staged row stride: odd
const NCOL: u32 = (HD4 + 7u) / 8u;     // vec4 columns of the output per invocation
const VC: u32 = {{ value_rows }}u;     // V rows staged at a time: divides BC
const LOWEST: f32 = -0x1.fffffep+127f; // -f32::MAX (Tint rejects a decimal that rounds to it)

var<workgroup> staged: array<vec4<f32>, {{ stage }}>; // Q rows then K rows [row][PAD4], or V [VC][HD4]
var<workgroup> probs: array<vec4<f32>, BC * 8u>;      // [key][rg]: the 4 rows' probabilities
var<workgroup> partial_max: array<vec4<f32>, 64u>;    // [cg][rg]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wid.y;
    // Last row blocks first: under a causal mask they have the most keys to read, and a GPU
    // starts workgroups roughly in order, so the short ones fill the tail of the dispatch.
    let r0 = ((p.s + BR - 1u) / BR - 1u - wid.x) * BR;
    let rg = lid / 8u;
    let cg = lid % 8u;
    let q_base = head * p.s * HD;
    let kv_base = (head / p.group) * p.kv_stride * HD;

    // Keys this workgroup's rows need: the tile loop's bound, uniform (p is a uniform buffer)
    // as its barriers require.
    var end = p.t;
    if p.causal != 0u {
        end = min(p.t, p.past + min(p.s, r0 + BR));
    }
    // Keys below limit[i] are seen by row 4rg + i.
    var limit = vec4<u32>(p.t);
    if p.causal != 0u {
        let rows = vec4<u32>(r0 + 4u * rg) + vec4<u32>(0u, 1u, 2u, 3u);
        limit = min(limit, vec4<u32>(p.past + 1u) + rows);
    }

    var m = vec4<f32>(LOWEST); // running maximum of each of the 4 rows
    var l = vec4<f32>(0.0);    // running sum
    var acc = array<vec4<f32>, 4u * NCOL>(); // acc[i * NCOL + c]: row 4rg + i, vec4 column cg + 8c

    for (var t0 = 0u; t0 < end; t0 += BC) {
        // S = Q·Kᵀ: s[j][i] is row 4rg + i's score of key t0 + cg + 8j.
        var s = array<vec4<f32>, 4>();
        for (var step = 0u; step < STEPS; step++) {
            for (var e = lid; e < (BR + BC) * DC4; e += 64u) {
                let r = e / DC4;
                let d = 4u * (step * DC4 + e % DC4);
                var x = vec4<f32>(0.0);
                if r < BR && r0 + r < p.s {
                    let at = q_base + (r0 + r) * HD + d;
                    for (var c = 0u; c < 4u && d + c < HD; c++) { x[c] = q[at + c] * p.scale; }
                } else if r >= BR && t0 + r - BR < end {
                    let at = kv_base + (t0 + r - BR) * HD + d;
                    for (var c = 0u; c < 4u && d + c < HD; c++) { x[c] = k[at + c]; }
                }
                staged[r * PAD4 + e % DC4] = x;
            }
            workgroupBarrier();
            for (var d = 0u; d < DC4; d++) {
                let q0 = staged[(4u * rg) * PAD4 + d];
                let q1 = staged[(4u * rg + 1u) * PAD4 + d];
                let q2 = staged[(4u * rg + 2u) * PAD4 + d];
                let q3 = staged[(4u * rg + 3u) * PAD4 + d];
                for (var j = 0u; j < 4u; j++) {
                    let kk = staged[(BR + cg + 8u * j) * PAD4 + d];
                    s[j] += vec4<f32>(dot(q0, kk), dot(q1, kk), dot(q2, kk), dot(q3, kk));
                }
            }
            workgroupBarrier();
        }

        // Bias and mask, then the tile's maximum of each row, across the 8 invocations of a row group.
        var seen = array<vec4<bool>, 4>();
        var tile_max = vec4<f32>(LOWEST);
        for (var j = 0u; j < 4u; j++) {
            let key = t0 + cg + 8u * j;
            seen[j] = vec4<u32>(key) < limit;
            if p.has_bias != 0u && key < p.t { s[j] += vec4<f32>(bias[key]); }
            tile_max = max(tile_max, select(vec4<f32>(LOWEST), s[j], seen[j]));
        }
        partial_max[cg * 8u + rg] = tile_max;
        workgroupBarrier();
        var m_new = m;
        for (var c = 0u; c < 8u; c++) { m_new = max(m_new, partial_max[c * 8u + rg]); }
        // Rescale once per tile, not per key.
        let correction = exp(m - m_new);
        m = m_new;
        l *= correction;
        for (var a = 0u; a < 4u * NCOL; a++) { acc[a] *= correction[a / NCOL]; }
        for (var j = 0u; j < 4u; j++) {
            probs[(cg + 8u * j) * 8u + rg] = select(vec4<f32>(0.0), exp(s[j] - m_new), seen[j]);
        }
        workgroupBarrier();

        // O += P·V, VC keys at a time.
        let n = min(BC, end - t0);
        for (var c0 = 0u; c0 < n; c0 += VC) {
            for (var e = lid; e < VC * HD4; e += 64u) {
                let key = t0 + c0 + e / HD4;
                let d = 4u * (e % HD4);
                var x = vec4<f32>(0.0);
                if key < end {
                    let at = kv_base + key * HD + d;
                    for (var c = 0u; c < 4u && d + c < HD; c++) { x[c] = v[at + c]; }
                }
                staged[e] = x;
            }
            workgroupBarrier();
            for (var j = 0u; j < VC; j++) {
                let pj = probs[(c0 + j) * 8u + rg];
                l += pj;
                for (var c = 0u; c < NCOL; c++) {
                    let col = cg + 8u * c;
                    if col < HD4 {
                        let vv = staged[j * HD4 + col];
                        acc[c] += pj.x * vv;
                        acc[NCOL + c] += pj.y * vv;
                        acc[2u * NCOL + c] += pj.z * vv;
                        acc[3u * NCOL + c] += pj.w * vv;
                    }
                }
            }
            workgroupBarrier();
        }
    }

    for (var i = 0u; i < 4u; i++) {
        let row = r0 + 4u * rg + i;
        if row < p.s {
            for (var c = 0u; c < NCOL; c++) {
                let col = cg + 8u * c;
                for (var e = 0u; e < 4u; e++) {
                    let d = 4u * col + e;
                    if col < HD4 && d < HD { out[q_base + row * HD + d] = acc[i * NCOL + c][e] / l[i]; }
                }
            }
        }
    }
}
