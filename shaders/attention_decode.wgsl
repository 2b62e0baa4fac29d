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
// Pass 0 is a memory read of CHUNK keys and values, so it is laid out for many loads in flight
// and few dependent steps (a workgroup's latency is the kernel's: a decode step's chunks all
// fit on the GPU at once):
// - chunks are short (32 keys), so a 1000-key cache is ~30 workgroups per kv head;
// - K and V are read as vec4 (HD is a multiple of 4); LANES = WG / CHUNK invocations share a key,
//   lane l taking vec4s l, l + LANES, …, so each load instruction of a key's lanes is one
//   contiguous run and a lane's loads are independent;
// - the chunk's softmax is a few steps through workgroup memory (CHUNK scores per query head);
// - for P·V, consecutive invocations take consecutive vec4s of a V row (coalesced) and PARTS
//   groups of them take every PARTS-th key, summed in workgroup memory at the end.
//
// The key count is read from a buffer, not from the parameters, so a recorded decode step
// replays at every position (model/decode_graph.rs): the grid then has a slot for every chunk
// the cache can hold, and the slots past the keys return at once.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
// Placeholders: {{ pass }} (0 partials, 1 combine), {{ workgroup_size }} (CHUNK · LANES),
// {{ head_dim }} (a multiple of 4), {{ chunk }}, {{ max_group }}, {{ parts }} (at most
// WG / (HD / 4); chosen so workgroup memory stays within WebGPU's 16 KiB).

struct Params {
    group: u32,     // query heads per kv head, <= MAX_GROUP
    slots: u32,     // chunk slots per head in `part`: the grid's x, >= ceil(t / CHUNK)
    scale: f32,
    kv_stride: u32, // rows between kv heads in k and v: the cache's capacity (>= t)
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;       // [heads, HD]
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>; // [kv_heads, kv_stride, HD / 4], t rows used
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>; // [kv_heads, kv_stride, HD / 4]
@group(0) @binding(3) var<storage, read_write> part: array<f32>;    // [heads, slots, HD + 2]: acc, m, l
@group(0) @binding(4) var<storage, read_write> out: array<f32>;     // [heads, HD]
@group(0) @binding(5) var<storage, read_write> keys: array<u32>;    // [_, t]: t keys per kv head
@group(0) @binding(6) var<uniform> p: Params;

const PASS: u32 = {{ pass }}u;
const WG: u32 = {{ workgroup_size }}u;
const HD: u32 = {{ head_dim }}u;
const VECS: u32 = HD / 4u;
const CHUNK: u32 = {{ chunk }}u;
const LANES: u32 = WG / CHUNK;
const MAX_GROUP: u32 = {{ max_group }}u;
const PARTS: u32 = {{ parts }}u;
const STRIDE: u32 = HD + 2u;
const LOWEST: f32 = -0x1.fffffep+127f; // -f32::MAX (Tint rejects a decimal that rounds to it)

var<workgroup> q_group: array<vec4<f32>, MAX_GROUP * VECS>;       // scaled; zero past GROUP
var<workgroup> dots: array<f32, MAX_GROUP * WG>;                  // [query head][key][lane]
var<workgroup> probs: array<f32, MAX_GROUP * CHUNK>;              // scores, then e^(score − m)
var<workgroup> top: array<f32, MAX_GROUP>;                        // m per query head
var<workgroup> outs: array<vec4<f32>, PARTS * MAX_GROUP * VECS>;  // [part][query head][vec4]
var<workgroup> key_count: u32;

fn partials(chunk: u32, kv_head: u32, lid: u32, t: u32) {
    let g = p.group;
    let n = min(CHUNK, t - chunk * CHUNK);
    let base = (kv_head * p.kv_stride + chunk * CHUNK) * VECS; // the chunk's first key, in vec4s
    for (var i = lid; i < MAX_GROUP * VECS; i += WG) {
        let at = (kv_head * g + i / VECS) * HD + (i % VECS) * 4u;
        var qv = vec4<f32>(0.0);
        if i / VECS < g { qv = vec4<f32>(q[at], q[at + 1u], q[at + 2u], q[at + 3u]) * p.scale; }
        q_group[i] = qv;
    }
    workgroupBarrier();

    // Scores: key j's dot with every query head of the group, split over its LANES lanes.
    let j = lid / LANES;
    let lane = lid % LANES;
    var d = array<f32, MAX_GROUP>();
    if j < n {
        for (var c = lane; c < VECS; c += LANES) {
            let key = k[base + j * VECS + c];
            for (var r = 0u; r < MAX_GROUP; r++) { d[r] += dot(q_group[r * VECS + c], key); }
        }
    }
    for (var r = 0u; r < MAX_GROUP; r++) { dots[(r * CHUNK + j) * LANES + lane] = d[r]; }
    workgroupBarrier();

    // The chunk's softmax: scores (keys past the chunk's end, and heads past the group, at the
    // lowest value: their e^ is 0), the max per head, then e^(score − max).
    for (var i = lid; i < MAX_GROUP * CHUNK; i += WG) {
        var s = 0.0;
        for (var l = 0u; l < LANES; l++) { s += dots[i * LANES + l]; }
        probs[i] = select(LOWEST, s, i % CHUNK < n && i / CHUNK < g);
    }
    workgroupBarrier();
    if lid < MAX_GROUP {
        var m = LOWEST;
        for (var jj = 0u; jj < CHUNK; jj++) { m = max(m, probs[lid * CHUNK + jj]); }
        top[lid] = select(0.0, m, lid < g);
    }
    workgroupBarrier();
    for (var i = lid; i < MAX_GROUP * CHUNK; i += WG) { probs[i] = exp(probs[i] - top[i / CHUNK]); }
    workgroupBarrier();

    // P·V: invocation (part, c) sums vec4 c of every PARTS-th value row.
    let c = lid % VECS;
    let which = lid / VECS;
    if which < PARTS {
        var acc = array<vec4<f32>, MAX_GROUP>();
        for (var jj = which; jj < n; jj += PARTS) {
            let value = v[base + jj * VECS + c];
            for (var r = 0u; r < MAX_GROUP; r++) { acc[r] += probs[r * CHUNK + jj] * value; }
        }
        for (var r = 0u; r < MAX_GROUP; r++) { outs[(which * MAX_GROUP + r) * VECS + c] = acc[r]; }
    }
    workgroupBarrier();
    for (var i = lid; i < g * VECS; i += WG) {
        var sum = outs[i];
        for (var w = 1u; w < PARTS; w++) { sum += outs[w * MAX_GROUP * VECS + i]; }
        let at = ((kv_head * g + i / VECS) * p.slots + chunk) * STRIDE + (i % VECS) * 4u;
        part[at] = sum.x;
        part[at + 1u] = sum.y;
        part[at + 2u] = sum.z;
        part[at + 3u] = sum.w;
    }
    if lid < g {
        var l = 0.0;
        for (var jj = 0u; jj < CHUNK; jj++) { l += probs[lid * CHUNK + jj]; }
        let at = ((kv_head * g + lid) * p.slots + chunk) * STRIDE + HD;
        part[at] = top[lid];
        part[at + 1u] = l;
    }
}

fn combine(head: u32, lid: u32, chunks: u32) {
    let base = head * p.slots * STRIDE;
    var m = LOWEST;
    for (var c = 0u; c < chunks; c++) { m = max(m, part[base + c * STRIDE + HD]); }
    var total = 0.0;
    for (var c = 0u; c < chunks; c++) {
        total += part[base + c * STRIDE + HD + 1u] * exp(part[base + c * STRIDE + HD] - m);
    }
    for (var d = lid; d < HD; d += WG) {
        var acc = 0.0;
        for (var c = 0u; c < chunks; c++) {
            acc += part[base + c * STRIDE + d] * exp(part[base + c * STRIDE + HD] - m);
        }
        out[head * HD + d] = acc / total;
    }
}

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Through workgroup memory so the count is uniform: the barriers after the early return
    // need every invocation of a workgroup to agree on it.
    if lid == 0u { key_count = min(keys[1], p.kv_stride); }
    let t = workgroupUniformLoad(&key_count);
    let chunks = (t + CHUNK - 1u) / CHUNK;
    if PASS == 0u {
        if wid.x >= chunks { return; }
        partials(wid.x, wid.y, lid, t);
    } else {
        combine(wid.x, lid, chunks);
    }
}
