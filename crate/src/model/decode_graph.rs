//! A decode step recorded once and replayed for every later token (cubecl's graph capture).
//!
//! A decode step is bound by kernel launches, not by the GPU (BENCHMARKS.md: ~300 launches per
//! token at 7–10 µs of CPU each). A replay skips what each launch costs on the way to the GPU:
//! pipeline lookup, bind groups, parameter uniforms are made once, at recording, and a replay
//! only re-encodes the recorded dispatches. (WebGPU cannot resubmit a command buffer, so this
//! is cubecl's software graph, on every backend, the browser's included.)
//!
//! What changes from one token to the next is read by the kernels from buffers written before
//! each replay: the token's embedding (copied into the recorded input row), the RoPE tables, and
//! the positions buffer (the cache row to write, the key count; `decoder::StepInputs`). The
//! recording is tied to the cache's buffers, so it lives in the `KvCache` it writes, and a cache
//! that grows gets a new one. On where it is used: `Gpu::record_decode_steps`.

use burn::tensor::Tensor;
use cubecl::client::Graph;

use super::FusionModel;
use super::decoder::StepInputs;
use super::kv_cache::KvCache;
use crate::error::{Error, Result};

pub struct DecodeGraph {
    graph: Graph,
    /// `FusionModel::id` of the model whose weights it reads.
    model: u64,
    /// `[1, D]`: the recorded step's input row.
    x: Tensor<2>,
    step: StepInputs,
    /// `[V]`: what the recorded step writes.
    logits: Tensor<1>,
    /// The cache's capacity when recorded (its buffers are the recording's).
    capacity: usize,
}

/// Why a cache decodes without a recording from here on.
#[derive(Debug)]
pub enum Recording {
    Ready(DecodeGraph),
    /// The backend or the step refused to be recorded; kept to tell (`fusion bench`).
    Refused(String),
}

/// The logits after `x [1, D]` (the next token's embedding), through the cache's recording: made
/// now when there is none, or when the cache will grow. Leaves `cache.len()` as it was.
pub(super) fn step(model: &FusionModel, x: Tensor<2>, cache: &mut KvCache) -> Result<Tensor<1>> {
    match cache.recording.take() {
        Some(Recording::Ready(recorded))
            if recorded.model == model.id
                && cache.capacity() == recorded.capacity
                && cache.len() < recorded.capacity =>
        {
            let logits = replay(model, &recorded, x, cache);
            cache.recording = Some(Recording::Ready(recorded));
            logits
        }
        Some(Recording::Refused(why)) => {
            cache.recording = Some(Recording::Refused(why));
            model.decode_launched(x, cache)
        }
        _ => match record(model, x.clone(), cache) {
            Ok((recorded, logits)) => {
                cache.recording = Some(Recording::Ready(recorded));
                Ok(logits)
            }
            // Nothing is half-done: the warm-up run, if it ran, wrote what the step writes (the
            // same values the launched step writes again).
            Err(Refused::Closed(why)) => {
                cache.recording = Some(Recording::Refused(why));
                model.decode_launched(x, cache)
            }
            Err(Refused::Open(why)) => {
                // Whatever made cubecl refuse may come back: this model launches from now on.
                model.set_decode_graphs(false);
                let error = Error::Execution(format!(
                    "{why}; the KV cache it touched can no longer be read, so this answer stops here (the conversation is rebuilt at its next question, and decode steps are launched from now on)"
                ));
                cache.recording = Some(Recording::Refused(why));
                Err(error)
            }
        },
    }
}

/// Why a step was not recorded.
enum Refused {
    /// Before the recording window opened: nothing is lost, the step is launched instead.
    Closed(String),
    /// Once the window was open: cubecl taints every buffer the recorded launches were given,
    /// the cache included (they never ran), so a read of any of them fails from here on.
    Open(String),
}

fn replay(model: &FusionModel, recorded: &DecodeGraph, x: Tensor<2>, cache: &KvCache) -> Result<Tensor<1>> {
    const OP: &str = "decode step";
    let gpu = &model.gpu;
    let width = recorded.x.dims()[1];
    let (src, dst) = (gpu.buffer_of(OP, x)?, gpu.buffer_in_place(OP, recorded.x.clone())?);
    crate::kernels::copy::copy(gpu, &src.handle, &dst.handle, width, 0)?;
    model.decoder.rewrite_step_inputs(gpu, &recorded.step, cache, 1)?;
    // SAFETY: see `replay_recorded`.
    unsafe { replay_recorded(&recorded.graph) }
        .map_err(|e| Error::Execution(format!("replaying the recorded decode step: {e}")))?;
    Ok(recorded.logits.clone())
}

/// Record the step at the cache's position, then replay it once for its logits. cubecl's
/// protocol: prepare, a warm-up run that executes (its allocations are what the recording is
/// served from: nothing may be allocated or written from the CPU inside the window), then the
/// recorded run, which does not execute.
fn record(
    model: &FusionModel,
    x: Tensor<2>,
    cache: &mut KvCache,
) -> std::result::Result<(DecodeGraph, Tensor<1>), Refused> {
    let gpu = &model.gpu;
    let client = gpu.client();
    if !x.dims()[1].is_multiple_of(4) {
        return Err(Refused::Closed(
            "the input row is not a whole number of vec4s (the copy into it moves vec4s)".into(),
        ));
    }
    let refused = |what: &str, e: &dyn std::fmt::Display| format!("recording a decode step: {what}: {e}");
    let step = model.decoder.step_inputs(gpu, cache, 1);
    let _alone = gpu.recording_alone();
    client.graph_prepare().map_err(|e| Refused::Closed(refused("prepare", &e)))?;
    // Every path from here closes the capture, whatever failed.
    let opened = match model.decode_layers(x.clone(), &step, cache) {
        Ok(_) => client.start_capture().map_err(|e| refused("start", &e)),
        Err(e) => Err(refused("warm-up run", &e)),
    };
    if let Err(why) = opened {
        let _ = client.stop_capture();
        return Err(Refused::Closed(why));
    }
    let recorded = model.decode_layers(x.clone(), &step, cache);
    if gpu.recording_spoiled() {
        // A write inside the window (the recovery tests' fault): cubecl refuses the capture.
        let _ = model.decoder.rewrite_step_inputs(gpu, &step, cache, 1);
    }
    let graph = client.stop_capture().map_err(|e| Refused::Open(refused("stop", &e)));
    let (logits, graph) = (recorded.map_err(|e| Refused::Open(refused("recorded run", &e)))?, graph?);
    // SAFETY: see `replay_recorded`.
    unsafe { replay_recorded(&graph) }.map_err(|e| Refused::Open(refused("first replay", &e)))?;
    let capacity = cache.capacity();
    Ok((DecodeGraph { graph, model: model.id, x, step, logits: logits.clone(), capacity }, logits))
}

/// # Safety
///
/// cubecl replays against the device buffers of the recording without checking them, so they
/// must all be alive, and touched by no other stream, until the replay's work is done:
/// - the model's weights: a recording is only replayed by the model that made it (`model`, an id
///   no other model has) and the model is borrowed for the step;
/// - the cache's buffers: only while the cache has the capacity it was recorded with (its
///   buffers change only when it grows), and the recording lives in the cache;
/// - the inputs, the output and the parameters: held by the `DecodeGraph`, and the device's
///   unused binding by its `Gpu`; every intermediate buffer's memory is held by the graph;
/// - one stream: every launch, write and read of the engine goes through one client from the
///   thread that drives it (the worker's only thread in a browser).
unsafe fn replay_recorded(graph: &Graph) -> std::result::Result<(), cubecl::server::ServerError> {
    // SAFETY: the caller's contract, above.
    unsafe { graph.replay() }
}

impl std::fmt::Debug for DecodeGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeGraph").field("graph", &self.graph).field("capacity", &self.capacity).finish()
    }
}
