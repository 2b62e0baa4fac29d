// Token embedding lookup from an f16 table: out[s, d] = table[ids[s], d] as f32.
//
// The table stays in f16 on the GPU, as the converted model stores it (an 8B's 128k × 4096
// table is 1 GB in f16, 2 GB in f32), read as packed pairs with unpack2x16float so no
// `shader-f16` is needed. One invocation per output pair keeps reads and writes coalesced.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
// Placeholders: {{ workgroup_size }}.

struct Params {
    rows: u32,     // ids
    cols: u32,     // embedding width
    groups_x: u32, // workgroups along x: pair = (wid.x + wid.y * groups_x) * WG + lid
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> ids: array<u32>;   // [rows]
@group(0) @binding(1) var<storage, read_write> table: array<u32>; // [vocab, cols] f16, paired
@group(0) @binding(2) var<storage, read_write> out: array<f32>;   // [rows, cols]
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = {{ workgroup_size }}u;

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Element pairs of the output; a row of odd width shares its last pair with the next row,
    // so each element is looked up on its own (the table is read by element, not by row).
    let first = 2u * ((wid.x + wid.y * p.groups_x) * WG + lid);
    for (var e = first; e < min(first + 2u, p.rows * p.cols); e++) {
        let row = e / p.cols;
        let at = ids[row] * p.cols + e % p.cols;
        out[e] = unpack2x16float(table[at >> 1u])[at & 1u];
    }
}
