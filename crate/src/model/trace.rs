//! Named intermediate tensors captured during a forward pass, so tests can compare each stage
//! against the reference separately.

use burn::tensor::Tensor;

#[derive(Default)]
pub struct Trace {
    entries: Vec<(String, Tensor<1>)>,
}

impl Trace {
    pub fn record<const D: usize>(&mut self, name: impl Into<String>, t: &Tensor<D>) {
        let numel = t.dims().iter().product::<usize>();
        self.entries.push((name.into(), t.clone().reshape([numel])));
    }

    pub fn get(&self, name: &str) -> Option<&Tensor<1>> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// Record into an optional trace.
pub(crate) fn record<const D: usize>(trace: &mut Option<&mut Trace>, name: impl FnOnce() -> String, t: &Tensor<D>) {
    if let Some(trace) = trace.as_deref_mut() {
        trace.record(name(), t);
    }
}
