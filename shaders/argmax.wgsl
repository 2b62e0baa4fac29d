// Greedy decoding's pick on the GPU: the index of the largest logit, so a decode step reads back
// 8 bytes instead of the whole vocabulary (an 8B's 128 256 logits are 512 KB, and a scalar
// argmax over them on the CPU took 177 µs natively, between two GPU steps).
//
// Each pass reduces (value, index) pairs to one per workgroup: the first pass reads the logits
// (the index is the position), later passes (flag `pairs`) the previous pass's output, until one
// workgroup is left. A workgroup covers WG × ITEMS inputs and each invocation loads its ITEMS
// before comparing any, so they are in flight together: a single workgroup looping over the
// vocabulary would wait out one memory latency per step, hundreds of them.
//
// The winner is the CPU sampler's: the first index of the largest value; NaN and -inf never win,
// and with nothing else the index stays NONE, which the launcher reads as 0, as the CPU does.
// Values are compared as integer keys that order like the floats: WGSL lets a compiler assume
// no NaN or infinity in float arithmetic, so float comparisons could not promise any of this.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
// Placeholders: {{ workgroup_size }}, {{ items }}. Flags: pairs.

struct Params {
    n: u32, // inputs: logits, or pairs of the previous pass
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> input: array<u32>; // [n] f32 bits, or [n, 2] (key, index)
@group(0) @binding(1) var<storage, read_write> out: array<u32>;   // [workgroups, 2] (key, index)
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = {{ workgroup_size }}u;
const ITEMS: u32 = {{ items }}u;
const NONE: u32 = 0xffffffffu;

var<workgroup> best_key: array<u32, WG>;
var<workgroup> best_index: array<u32, WG>;

// An f32's bits as a key that orders like the value (negative values flipped, positive ones
// above them), -0 as +0; 0 (below every key) for NaN and -inf.
fn key_of(bits: u32) -> u32 {
    if ((bits & 0x7fffffffu) > 0x7f800000u || bits == 0xff800000u) {
        return 0u;
    }
    let b = select(bits, 0u, bits == 0x80000000u);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Whether (k, i) beats (bk, bi): larger, or as large and earlier.
fn beats(k: u32, i: u32, bk: u32, bi: u32) -> bool {
    return k > bk || (k == bk && i < bi);
}

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let first = wid.x * WG * ITEMS + lid;
    var keys = array<u32, ITEMS>();
    var indices = array<u32, ITEMS>();
    for (var j = 0u; j < ITEMS; j++) {
        // Clamped, so every load is in bounds; the entries past n are dropped below.
        let at = min(first + j * WG, p.n - 1u);
//#if pairs
        keys[j] = input[2u * at];
        indices[j] = input[2u * at + 1u];
//#else
        keys[j] = key_of(input[at]);
        indices[j] = at;
//#endif
    }
    // A key of 0 (dropped) keeps index NONE, so it never wins a tie either.
    var bk = 0u;
    var bi = NONE;
    for (var j = 0u; j < ITEMS; j++) {
        if (first + j * WG < p.n && keys[j] != 0u && beats(keys[j], indices[j], bk, bi)) {
            bk = keys[j];
            bi = indices[j];
        }
    }
    best_key[lid] = bk;
    best_index[lid] = bi;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s && beats(best_key[lid + s], best_index[lid + s], best_key[lid], best_index[lid])) {
            best_key[lid] = best_key[lid + s];
            best_index[lid] = best_index[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        out[2u * wid.x] = best_key[0];
        out[2u * wid.x + 1u] = best_index[0];
    }
}
