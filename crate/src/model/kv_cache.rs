//! Per-layer key/value cache of the decoder: preallocated buffers written in place, so a decode
//! step appends one row per head instead of copying the whole cache (at 1000 cached positions
//! a concatenating cache would move more bytes per token than Phi-3.5's int4 weights).

use burn::tensor::{Device, Tensor};

use super::decode_graph::Recording;

/// Positions a layer's buffers hold at first; they double when full (amortised O(1) appends).
const INITIAL_CAPACITY: usize = 256;

/// Never cloned: kernels write its buffers in place (`kernels::rope_into_cache`).
#[derive(Default)]
pub struct KvCache {
    /// Per layer: keys and values `[kv_heads, capacity, head_dim]`, RoPE already applied to
    /// keys; rows `len..` are unused.
    layers: Vec<Option<(Tensor<3>, Tensor<3>)>>,
    len: usize,
    /// The decode step recorded against these buffers (`model::decode_graph`).
    pub(crate) recording: Option<Recording>,
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        Self { layers: (0..layers).map(|_| None).collect(), len: 0, recording: None }
    }

    /// Positions the buffers hold before they grow (0 before the first write).
    pub fn capacity(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.dims()[1])
    }

    /// How the last decode step on this cache ran: `recorded` (replayed), `launched` (no step
    /// recorded yet, or recording off), or why the recording was refused.
    pub fn decode_path(&self) -> &str {
        match &self.recording {
            Some(Recording::Ready(_)) => "recorded",
            Some(Recording::Refused(why)) => why,
            None => "launched",
        }
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffers of `layer` with room for `new` positions after the cached ones, for a kernel
    /// to write rows `len() .. len() + new` in place (`kernels::rope_into_cache`).
    pub(crate) fn reserve(
        &mut self,
        layer: usize,
        [heads, hd]: [usize; 2],
        new: usize,
        device: &Device,
    ) -> (Tensor<3>, Tensor<3>) {
        let (kb, vb) = self.take(layer, [heads, hd], new, device);
        self.layers[layer] = Some((kb.clone(), vb.clone()));
        (kb, vb)
    }

    /// Write `k`, `v` `[kv_heads, new, head_dim]` after the cached positions of `layer`; returns
    /// the layer's buffers and how many of their rows are now valid.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<3>, v: Tensor<3>) -> (Tensor<3>, Tensor<3>, usize) {
        let [heads, new, hd] = k.dims();
        let (start, end) = (self.len, self.len + new);
        let (kb, vb) = self.take(layer, [heads, hd], new, &k.device());
        // The buffers are owned here alone, so burn writes the new rows in place.
        let kb = kb.slice_assign([0..heads, start..end, 0..hd], k);
        let vb = vb.slice_assign([0..heads, start..end, 0..hd], v);
        self.layers[layer] = Some((kb.clone(), vb.clone()));
        (kb, vb, end)
    }

    /// The buffers of `layer`, out of their slot, grown (doubled, cached rows copied) when
    /// `new` more positions do not fit.
    fn take(&mut self, layer: usize, [heads, hd]: [usize; 2], new: usize, device: &Device) -> (Tensor<3>, Tensor<3>) {
        let (start, end) = (self.len, self.len + new);
        match self.layers[layer].take() {
            Some((kb, vb)) if kb.dims()[1] >= end => (kb, vb),
            old => {
                let capacity = end.next_power_of_two().max(INITIAL_CAPACITY);
                let grow = |old: Option<Tensor<3>>| {
                    let fresh = Tensor::<3>::zeros([heads, capacity, hd], device);
                    match old {
                        Some(old) if start > 0 => {
                            fresh.slice_assign([0..heads, 0..start, 0..hd], old.slice([0..heads, 0..start, 0..hd]))
                        }
                        _ => fresh,
                    }
                };
                let (ok, ov) = old.map_or((None, None), |(a, b)| (Some(a), Some(b)));
                (grow(ok), grow(ov))
            }
        }
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
