// Fused attention over many query rows: decoder prefill (causal after `past` cached positions,
// GQA) and the vision tower (non-causal, additive key bias for padded question tokens).
// out = softmax(q·kᵀ·scale + bias)·v, flash-style: keys stream through workgroup memory in
// tiles and each invocation keeps its row's running max, running sum and output accumulator
// (online softmax), so the [rows, keys] score matrix never exists in memory.
//
// Layout: one workgroup = ROWS consecutive query rows of one query head, one invocation = one
// row with q and the accumulator in registers. A tile holds TILE keys of K and of V, loaded
// with consecutive invocations on consecutive floats (coalesced); afterwards every invocation
// reads the same tile element at once (a workgroup-memory broadcast, no bank conflicts).
// 2·TILE·HD floats stay within WebGPU's guaranteed 16 KiB of workgroup memory.
//
// The score scale is folded into q. Masked keys are skipped (causal) or get the caller's
// bias (f32::MIN for padding): with no infinities anywhere, exp() never sees inf − inf.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
// Placeholders: {{ rows }} (workgroup size), {{ head_dim }}, {{ tile }}.

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

const ROWS: u32 = {{ rows }}u;
const HD: u32 = {{ head_dim }}u;
const HD4: u32 = (HD + 3u) / 4u; // head dims in vec4s; the tail of the last one is zero
const TILE: u32 = {{ tile }}u;
const LOWEST: f32 = -0x1.fffffep+127f; // -f32::MAX (Tint rejects a decimal that rounds to it)

var<workgroup> k_tile: array<vec4<f32>, TILE * HD4>;
var<workgroup> v_tile: array<vec4<f32>, TILE * HD4>;

@compute @workgroup_size({{ rows }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wid.y;
    let row = wid.x * ROWS + lid;
    // No early return for rows past the end: every invocation helps load tiles and must reach
    // the barriers.
    let live = row < p.s;
    let kv_base = (head / p.group) * p.kv_stride * HD;

    // Keys this workgroup's rows need: the tile loop's bound, uniform (p is a uniform buffer)
    // as its barriers require.
    var end = p.t;
    if p.causal != 0u {
        end = min(p.t, p.past + min(p.s, wid.x * ROWS + ROWS));
    }
    var limit = p.t;
    if p.causal != 0u {
        limit = min(p.t, p.past + row + 1u);
    }

    // vec4 arithmetic: 4× fewer loop trips and 16-byte workgroup-memory reads. (A first,
    // scalar version with f32 arrays of HD silently went wrong on lavapipe, Mesa 22.3, beyond
    // about 300 keys at hd 96 — only the first output dimension survived; this form matches
    // the reference to 1e-6 up to 12 000 keys. The kernel test covers long key ranges.)
    let q_base = (head * p.s + row) * HD;
    var qr: array<vec4<f32>, HD4>;
    var acc: array<vec4<f32>, HD4>;
    for (var d = 0u; d < HD4; d++) { acc[d] = vec4<f32>(0.0); qr[d] = vec4<f32>(0.0); }
    if live {
        for (var d = 0u; d < HD; d++) { qr[d / 4u][d % 4u] = q[q_base + d] * p.scale; }
    }
    var m = LOWEST;
    var l = 0.0;
    var scores: array<f32, TILE>;

    for (var t0 = 0u; t0 < end; t0 += TILE) {
        let n = min(TILE, end - t0);
        for (var i = lid; i < n * HD4; i += ROWS) {
            let at = kv_base + (t0 + i / HD4) * HD;
            let d = 4u * (i % HD4);
            var kk = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            for (var c = 0u; c < 4u && d + c < HD; c++) {
                kk[c] = k[at + d + c];
                vv[c] = v[at + d + c];
            }
            k_tile[i] = kk;
            v_tile[i] = vv;
        }
        workgroupBarrier();
        if live && t0 < limit {
            let visible = min(n, limit - t0);
            var tile_max = m;
            for (var j = 0u; j < visible; j++) {
                var s = 0.0;
                for (var d = 0u; d < HD4; d++) { s += dot(qr[d], k_tile[j * HD4 + d]); }
                if p.has_bias != 0u { s += bias[t0 + j]; }
                scores[j] = s;
                tile_max = max(tile_max, s);
            }
            // Rescale once per tile, not per key.
            let correction = exp(m - tile_max);
            l *= correction;
            for (var d = 0u; d < HD4; d++) { acc[d] *= correction; }
            for (var j = 0u; j < visible; j++) {
                let pj = exp(scores[j] - tile_max);
                l += pj;
                for (var d = 0u; d < HD4; d++) { acc[d] += pj * v_tile[j * HD4 + d]; }
            }
            m = tile_max;
        }
        workgroupBarrier();
    }

    if live {
        for (var d = 0u; d < HD; d++) { out[q_base + d] = acc[d / 4u][d % 4u] / l; }
    }
}
