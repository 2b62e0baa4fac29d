// SwiGLU, y = silu(gate) · up, for gate and up side by side in each row of gu [rows, 2·inter]
// (Phi-3.5's fused gate_up projection as it comes out; LLaMA's two are concatenated first):
// one launch where burn's ops take three, and no slice copied out of gu.
//
// Every storage binding is read_write: burn's allocator sub-allocates tensors from shared buffers.
//
// Placeholders: {{ workgroup_size }}.

struct Params {
    rows: u32,
    inter: u32,
    groups_x: u32, // workgroups along x: i = (wid.x + wid.y * groups_x) * WG + lid
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> gu: array<f32>; // [rows, 2 inter]
@group(0) @binding(1) var<storage, read_write> y: array<f32>;  // [rows, inter]
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = {{ workgroup_size }}u;

@compute @workgroup_size({{ workgroup_size }})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * p.groups_x) * WG + lid;
    if i >= p.rows * p.inter { return; }
    let r = i / p.inter;
    let c = i % p.inter;
    let gate = gu[r * 2u * p.inter + c];
    let up = gu[r * 2u * p.inter + p.inter + c];
    y[i] = gate / (1.0 + exp(-gate)) * up;
}
