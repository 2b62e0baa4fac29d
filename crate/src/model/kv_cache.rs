//! Per-layer key/value cache of the decoder: preallocated buffers written in place, so a decode
//! step appends one row per head instead of copying the whole cache (at 1000 cached positions
//! a concatenating cache would move more bytes per token than Phi-3.5's int4 weights).

use burn::tensor::Tensor;

/// Positions a layer's buffers hold at first; they double when full (amortised O(1) appends).
const INITIAL_CAPACITY: usize = 256;

#[derive(Default)]
pub struct KvCache {
    /// Per layer: keys and values `[kv_heads, capacity, head_dim]`, RoPE already applied to
    /// keys; rows `len..` are unused.
    layers: Vec<Option<(Tensor<3>, Tensor<3>)>>,
    len: usize,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        Self { layers: (0..layers).map(|_| None).collect(), len: 0 }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Write `k`, `v` `[kv_heads, new, head_dim]` after the cached positions of `layer`; returns
    /// the layer's buffers and how many of their rows are now valid.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<3>, v: Tensor<3>) -> (Tensor<3>, Tensor<3>, usize) {
        let [heads, new, hd] = k.dims();
        let (start, end) = (self.len, self.len + new);
        let slot = &mut self.layers[layer];
        let (mut kb, mut vb) = match slot.take() {
            Some((kb, vb)) if kb.dims()[1] >= end => (kb, vb),
            old => {
                let capacity = end.next_power_of_two().max(INITIAL_CAPACITY);
                let grow = |old: Option<Tensor<3>>| {
                    let fresh = Tensor::<3>::zeros([heads, capacity, hd], &k.device());
                    match old {
                        Some(old) if start > 0 => fresh.slice_assign([0..heads, 0..start, 0..hd], old.slice([0..heads, 0..start, 0..hd])),
                        _ => fresh,
                    }
                };
                let (ok, ov) = old.map_or((None, None), |(a, b)| (Some(a), Some(b)));
                (grow(ok), grow(ov))
            }
        };
        // The buffers are owned here alone, so burn writes the new rows in place.
        kb = kb.slice_assign([0..heads, start..end, 0..hd], k);
        vb = vb.slice_assign([0..heads, start..end, 0..hd], v);
        *slot = Some((kb.clone(), vb.clone()));
        (kb, vb, end)
    }

    /// Record that `n` positions were appended to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Forget positions from `len` on (to resume a conversation from a shared prefix); the
    /// buffers keep their capacity.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}
