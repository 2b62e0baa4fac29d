// Split-K decode attention: one new query row per head against the whole KV cache, GQA.
//
// With one query row there is nothing to tile over rows, and one workgroup per head would
// leave most of the GPU idle on a long cache. So the keys are split into chunks of CHUNK
// (flash-decoding): pass 0 runs one workgroup per (chunk, kv head) and writes, for each of
// the GROUP query heads sharing that kv head, the chunk's max score m, sum of exp l and
// unnormalised output; pass 1 runs one workgroup per query head and merges the chunks
// (out = Σ acc_c·e^(m_c − M) / Σ l_c·e^(m_c − M)). Reading a key row once for all query
// heads of its group is where GQA saves bandwidth.
//
// Pass 0 layout: each invocation scores whole key rows (q of the group sits in workgroup
// memory, broadcast); maxima and sums meet in a shared-memory tree; for P·V the invocations
// switch to one output dimension each, so consecutive invocations read consecutive floats of
// a V row (coalesced).
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
// Placeholders: {{ pass }} (0 partials, 1 combine), {{ workgroup_size }} (power of two),
// {{ head_dim }}, {{ chunk }}, {{ max_group }}.

struct Params {
    t: u32,         // keys per kv head
    group: u32,     // query heads per kv head, <= MAX_GROUP
    chunks: u32,    // ceil(t / CHUNK)
    scale: f32,
    kv_stride: u32, // rows between kv heads in k and v: the cache's capacity (>= t)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;    // [heads, HD]
@group(0) @binding(1) var<storage, read_write> k: array<f32>;    // [kv_heads, kv_stride, HD], t rows used
@group(0) @binding(2) var<storage, read_write> v: array<f32>;    // [kv_heads, kv_stride, HD]
@group(0) @binding(3) var<storage, read_write> part: array<f32>; // [heads, chunks, HD + 2]: acc, m, l
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // [heads, HD]
@group(0) @binding(5) var<uniform> p: Params;

const PASS: u32 = {{ pass }}u;
const WG: u32 = {{ workgroup_size }}u;
const HD: u32 = {{ head_dim }}u;
const CHUNK: u32 = {{ chunk }}u;
const MAX_GROUP: u32 = {{ max_group }}u;
const STRIDE: u32 = HD + 2u;
const LOWEST: f32 = -0x1.fffffep+127f; // -f32::MAX (Tint rejects a decimal that rounds to it)

var<workgroup> q_group: array<f32, MAX_GROUP * HD>;
var<workgroup> scores: array<f32, MAX_GROUP * CHUNK>;
var<workgroup> tree: array<f32, MAX_GROUP * WG>;
var<workgroup> stat: array<f32, MAX_GROUP>;

// Reduce tree[r * WG ..][..WG] for every r at once; max when `is_max`, sum otherwise.
fn reduce(lid: u32, is_max: bool) {
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            for (var r = 0u; r < MAX_GROUP; r++) {
                let a = tree[r * WG + lid];
                let b = tree[r * WG + lid + half];
                tree[r * WG + lid] = select(a + b, max(a, b), is_max);
            }
        }
        workgroupBarrier();
    }
    if lid < MAX_GROUP { stat[lid] = tree[lid * WG]; }
    workgroupBarrier();
}

fn partials(chunk: u32, kv_head: u32, lid: u32) {
    let g = p.group;
    let t0 = chunk * CHUNK;
    let n = min(CHUNK, p.t - t0);
    let kv_base = kv_head * p.kv_stride * HD;
    for (var i = lid; i < g * HD; i += WG) { q_group[i] = q[kv_head * g * HD + i] * p.scale; }
    workgroupBarrier();

    var local_max: array<f32, MAX_GROUP>;
    for (var r = 0u; r < MAX_GROUP; r++) { local_max[r] = LOWEST; }
    for (var j = lid; j < n; j += WG) {
        var dots: array<f32, MAX_GROUP>;
        for (var r = 0u; r < MAX_GROUP; r++) { dots[r] = 0.0; }
        let row = kv_base + (t0 + j) * HD;
        for (var d = 0u; d < HD; d++) {
            let kd = k[row + d];
            for (var r = 0u; r < g; r++) { dots[r] += q_group[r * HD + d] * kd; }
        }
        for (var r = 0u; r < g; r++) {
            scores[r * CHUNK + j] = dots[r];
            local_max[r] = max(local_max[r], dots[r]);
        }
    }
    for (var r = 0u; r < MAX_GROUP; r++) { tree[r * WG + lid] = local_max[r]; }
    reduce(lid, true);
    var m: array<f32, MAX_GROUP>;
    for (var r = 0u; r < MAX_GROUP; r++) { m[r] = stat[r]; }

    var local_sum: array<f32, MAX_GROUP>;
    for (var r = 0u; r < MAX_GROUP; r++) { local_sum[r] = 0.0; }
    for (var j = lid; j < n; j += WG) {
        for (var r = 0u; r < g; r++) {
            let e = exp(scores[r * CHUNK + j] - m[r]);
            scores[r * CHUNK + j] = e;
            local_sum[r] += e;
        }
    }
    for (var r = 0u; r < MAX_GROUP; r++) { tree[r * WG + lid] = local_sum[r]; }
    reduce(lid, false);

    for (var d = lid; d < HD; d += WG) {
        var acc: array<f32, MAX_GROUP>;
        for (var r = 0u; r < MAX_GROUP; r++) { acc[r] = 0.0; }
        for (var j = 0u; j < n; j++) {
            let vd = v[kv_base + (t0 + j) * HD + d];
            for (var r = 0u; r < g; r++) { acc[r] += scores[r * CHUNK + j] * vd; }
        }
        for (var r = 0u; r < g; r++) {
            part[((kv_head * g + r) * p.chunks + chunk) * STRIDE + d] = acc[r];
        }
    }
    if lid < g {
        let at = ((kv_head * g + lid) * p.chunks + chunk) * STRIDE + HD;
        part[at] = m[lid];
        part[at + 1u] = stat[lid];
    }
}

fn combine(head: u32, lid: u32) {
    let base = head * p.chunks * STRIDE;
    var top = LOWEST;
    for (var c = 0u; c < p.chunks; c++) { top = max(top, part[base + c * STRIDE + HD]); }
    var total = 0.0;
    for (var c = 0u; c < p.chunks; c++) {
        total += part[base + c * STRIDE + HD + 1u] * exp(part[base + c * STRIDE + HD] - top);
    }
    for (var d = lid; d < HD; d += WG) {
        var acc = 0.0;
        for (var c = 0u; c < p.chunks; c++) {
            acc += part[base + c * STRIDE + d] * exp(part[base + c * STRIDE + HD] - top);
        }
        out[head * HD + d] = acc / total;
    }
}

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    if PASS == 0u {
        partials(wid.x, wid.y, lid);
    } else {
        combine(wid.x, lid);
    }
}
