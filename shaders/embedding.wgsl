// Token embedding lookup: out[s, d] = table[ids[s], d] as f32.
//
// The table stays on the GPU as the model stores it: f16 in a converted model (an 8B's 128k ×
// 4096 table is 1 GB in f16, 2 GB in f32), read as packed pairs with unpack2x16float so no
// `shader-f16` is needed, or f32 from a checkpoint (flag `f32_table`). One invocation per
// output pair keeps reads and writes coalesced.
//
// Flag `picked`: the one id is the index of argmax.wgsl's (key, index) result, still on the
// GPU, so greedy decoding queues a step on its token before the CPU has read that token back.
// That index is NONE when no logit could win, which the CPU reads as token 0; any id at or
// past the vocabulary is read as 0 here too, so no lookup leaves the table (the launcher has
// already refused prompt ids out of range, and picks among more logits than the table has rows).
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
// Placeholders: {{ workgroup_size }}. Flags: f32_table, picked.

struct Params {
    rows: u32,     // ids
    cols: u32,     // embedding width
    groups_x: u32, // workgroups along x: pair = (wid.x + wid.y * groups_x) * WG + lid
    vocab: u32,    // table rows
}

@group(0) @binding(0) var<storage, read_write> ids: array<u32>;   // [rows], or `picked`: [key, index]
@group(0) @binding(1) var<storage, read_write> table: array<u32>; // [vocab, cols] f16 paired, or f32 bits
@group(0) @binding(2) var<storage, read_write> out: array<f32>;   // [rows, cols]
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = {{ workgroup_size }}u;

fn id_of(row: u32) -> u32 {
//#if picked
    let id = ids[1u];
//#else
    let id = ids[row];
//#endif
    return select(id, 0u, id >= p.vocab);
}

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Element pairs of the output; a row of odd width shares its last pair with the next row,
    // so each element is looked up on its own (the table is read by element, not by row).
    let first = 2u * ((wid.x + wid.y * p.groups_x) * WG + lid);
    for (var e = first; e < min(first + 2u, p.rows * p.cols); e++) {
        let row = e / p.cols;
        let at = id_of(row) * p.cols + e % p.cols;
//#if f32_table
        out[e] = bitcast<f32>(table[at]);
//#else
        out[e] = unpack2x16float(table[at >> 1u])[at & 1u];
//#endif
    }
}
