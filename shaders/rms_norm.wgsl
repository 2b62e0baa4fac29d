// RMSNorm of each row, y = x / sqrt(mean(x²) + eps) · weight, in one launch (burn's ops take
// five: square, mean, add, sqrt, divide-and-scale), since a decode step is bound by launches as
// much as by bytes. One workgroup per row: its invocations stride over the row (coalesced),
// their partial sums of squares meet in a shared-memory tree, then each scales its columns.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
//
// Placeholders: {{ workgroup_size }} (power of two).

struct Params {
    rows: u32,
    cols: u32,
    groups_x: u32, // workgroups along x: row = wid.x + wid.y * groups_x
    eps: f32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;      // [rows, cols]
@group(0) @binding(1) var<storage, read_write> weight: array<f32>; // [cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;      // [rows, cols]
@group(0) @binding(3) var<uniform> p: Params;

const WG: u32 = {{ workgroup_size }}u;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * p.groups_x;
    if row >= p.rows { return; } // the same for the whole workgroup: the barriers stay uniform
    let base = row * p.cols;
    var sum = 0.0;
    for (var c = lid; c < p.cols; c += WG) {
        let v = x[base + c];
        sum += v * v;
    }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride { partial[lid] += partial[lid + stride]; }
        workgroupBarrier();
    }
    let rms = sqrt(partial[0] / f32(p.cols) + p.eps);
    for (var c = lid; c < p.cols; c += WG) {
        y[base + c] = x[base + c] / rms * weight[c];
    }
}
