//! Per-layer key/value cache of the decoder.

use burn::tensor::Tensor;

#[derive(Default)]
pub struct KvCache {
    /// Per layer: keys and values `[kv_heads, len, head_dim]`, RoPE already applied to keys.
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

    /// Append `k`, `v` `[kv_heads, new, head_dim]` for `layer`; returns the whole cache of it.
    pub(crate) fn append(&mut self, layer: usize, k: Tensor<3>, v: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let slot = &mut self.layers[layer];
        let (k, v) = match slot.take() {
            Some((ck, cv)) => (Tensor::cat(vec![ck, k], 1), Tensor::cat(vec![cv, v], 1)),
            None => (k, v),
        };
        *slot = Some((k.clone(), v.clone()));
        (k, v)
    }

    /// Record that `n` positions were appended to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Forget positions from `len` on (to resume a conversation from a shared prefix).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        for slot in &mut self.layers {
            if let Some((k, v)) = slot.take() {
                let [h, _, d] = k.dims();
                *slot = (len > 0).then(|| (k.slice([0..h, 0..len, 0..d]), v.slice([0..h, 0..len, 0..d])));
            }
        }
        self.len = len;
    }
}
