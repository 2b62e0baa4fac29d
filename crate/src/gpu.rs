//! The GPU the engine runs on: burn's `Device` plus the cubecl client that our own WGSL
//! kernels launch through, and the conversions between burn tensors and raw buffers.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use burn::backend::wgpu::{CubeBackend, CubeTensor};
use burn::tensor::wgpu::{WgpuSetup, wgpu};
use burn::tensor::{DType, Device, Shape, Tensor};
use cubecl::client::Client;
use cubecl::server::Handle;

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Gpu {
    device: Device,
    client: Client,
    cube_device: cubecl::Device,
    /// See [`Gpu::unused_binding`].
    unused: Handle,
    /// The wgpu handles under burn's runtime: the adapter to open a new device on after a loss.
    setup: WgpuSetup,
    /// What the device offers, read once: every int4 launch asks.
    features: Capabilities,
    /// Kernels keep to WebGPU's baseline whatever the device offers ([`Gpu::baseline`]).
    baseline: bool,
    /// Models on this device record decode steps ([`Gpu::record_decode_steps`]).
    record_decode: bool,
    /// False on [`Gpu::noop`].
    runs_kernels: bool,
    /// See [`Gpu::spoil_next_recording`].
    spoil_recording: Arc<AtomicBool>,
    /// See [`Gpu::recording_alone`].
    recording: Arc<Mutex<()>>,
}

/// What our kernels may use beyond WebGPU's baseline (`fusion info` and the bench report it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// `shader-f16`: the int4 GEMM multiplies in f16.
    pub f16: bool,
    /// `subgroups`: the int4 matvec reduces with subgroup operations.
    pub subgroups: bool,
}

/// Whether the browser's GPUDevice under wgpu has `subgroups`, and its WGSL the `subgroup_id`
/// and `num_subgroups` builtins the int4 matvec reads. wgpu 30's WebGPU backend has no name for
/// the feature, so it never asks for it nor reports it: `web/src/device.js` asks for it where the
/// adapter offers it, and this reads what the device got.
#[cfg(target_family = "wasm")]
fn browser_subgroups(device: &wgpu::Device) -> bool {
    use wasm_bindgen::{JsCast, JsValue};
    let get = |object: &JsValue, key: &str| {
        js_sys::Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    };
    // GPUSupportedFeatures and WGSLLanguageFeatures are set-like, not Sets: only `has` is called.
    let has =
        |set: JsValue, name: &str| set.is_object() && set.unchecked_into::<js_sys::Set>().has(&JsValue::from_str(name));
    let Some(device) = device.as_webgpu() else { return false };
    let wgsl = get(&get(&get(&js_sys::global(), "navigator"), "gpu"), "wgslLanguageFeatures");
    has(get(device, "features"), "subgroups") && has(wgsl, "subgroup_id")
}

#[cfg(not(target_family = "wasm"))]
fn browser_subgroups(_: &wgpu::Device) -> bool {
    false
}

// cubecl submits a command buffer every 32 dispatches (its default, `CUBECL_WGPU_MAX_TASKS`).
// Measured on an H100 with the 3B decoder (BENCHMARKS.md): 8 → 67 tokens/s, 16 → 76, 32 → 82,
// 64 → 79, 256 → 57, 1024 → 44. Fewer submits cost less CPU, but the GPU waits for each batch
// to be recorded, and a decode step's GPU work is worth overlapping with its recording.
impl Gpu {
    /// Open the default adapter (Vulkan/Metal natively; lavapipe in CI).
    #[cfg(not(target_family = "wasm"))]
    pub fn new() -> Result<Self> {
        let (device, setup) = Device::wgpu_options().init_with_setup().map_err(|e| Error::Gpu(e.to_string()))?;
        Self::from_device(device, setup)
    }

    /// A device that runs nothing: wgpu's noop backend, described as a discrete GPU (subgroups
    /// of 32, `shader-f16`, a desktop's limits). Buffers are host memory and kernels are never
    /// executed (a read returns what the CPU wrote there, never a kernel's result), so timing
    /// work on it measures what issuing that work costs the CPU: cubecl, wgpu and our own code,
    /// with no driver and no GPU.
    #[cfg(not(target_family = "wasm"))]
    pub fn noop() -> Result<Self> {
        let features = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP;
        let limits = wgpu::Limits {
            max_buffer_size: 1 << 31,
            max_storage_buffer_binding_size: 1 << 31,
            max_storage_buffers_per_shader_stage: 16,
            max_compute_workgroup_storage_size: 48 << 10,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroup_size_x: 1024,
            max_compute_workgroup_size_y: 1024,
            ..wgpu::Limits::default()
        };
        let noop = wgpu::NoopBackendOptions {
            enable: true,
            limits: Some(limits.clone()),
            features: Some(features),
            device_type: Some(wgpu::DeviceType::DiscreteGpu),
            subgroup_min_size: Some(32),
            subgroup_max_size: Some(32),
        };
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::NOOP,
            backend_options: wgpu::BackendOptions { noop, ..Default::default() },
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .map_err(|e| Error::Gpu(format!("wgpu's noop adapter: {e}")))?;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("fusion (noop)"),
            required_features: features,
            required_limits: limits,
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
            .map_err(|e| Error::Gpu(format!("a noop device: {e}")))?;
        let setup = WgpuSetup { instance, adapter, device, queue, backend: wgpu::Backend::Noop };
        let device = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| Error::Gpu(e.to_string()))?;
        Ok(Self { runs_kernels: false, ..Self::from_device(device, setup)? })
    }

    /// Whether kernels run on this device (all but [`Gpu::noop`]'s).
    pub fn runs_kernels(&self) -> bool {
        self.runs_kernels
    }

    /// Open the default adapter; the only way in a browser (WebGPU is asynchronous there).
    pub async fn new_async() -> Result<Self> {
        let (device, setup) =
            Device::wgpu_options().init_with_setup_async().await.map_err(|e| Error::Gpu(e.to_string()))?;
        Self::from_device(device, setup)
    }

    /// A new device on this one's adapter, with the same features and limits: what goes on
    /// after [`Error::DeviceLost`]. burn's runtime opens the default device once per process,
    /// so the new one is registered with it as an existing setup.
    pub async fn renew(&self) -> Result<Self> {
        let WgpuSetup { instance, adapter, device: old, backend, .. } = self.setup.clone();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("fusion (renewed)"),
            required_features: old.features(),
            required_limits: old.limits(),
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            // SAFETY: the token cubecl passed when it opened the first device with these
            // features (wgpu asks for it before granting experimental ones); nothing is enabled
            // that the first device did not have.
            experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() },
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&descriptor)
            .await
            .map_err(|e| Error::Gpu(format!("cannot open a new device on {}: {e}", adapter.get_info().name)))?;
        let setup = WgpuSetup { instance, adapter, device, queue, backend };
        let renewed = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| Error::Gpu(e.to_string()))?;
        Ok(Self { baseline: self.baseline, record_decode: self.record_decode, ..Self::from_device(renewed, setup)? })
    }

    /// This device with every kernel on WebGPU's baseline path (f32 arithmetic, workgroup-memory
    /// reductions) whatever it offers: the arithmetic of a browser without `shader-f16` or
    /// subgroups (SwiftShader), so both give the same answers, bit for bit.
    pub fn baseline(self) -> Self {
        Self { baseline: true, ..self }
    }

    /// Whether models loaded on this device record a decode step and replay it
    /// (`model::decode_graph`). [Decision] On in the browser (one engine, one thread: the
    /// worker's), off by default natively, where the `fusion` CLI turns it on. With several
    /// engines decoding on one device from different threads, cubecl 0.11.3 sometimes refuses
    /// a recording (see [`Gpu::recording_alone`]), and a recording refused when it closes
    /// taints what it touched, the KV cache included: that answer fails (the conversation is
    /// rebuilt at its next question, and the model launches every kernel from then on).
    pub fn record_decode_steps(self, on: bool) -> Self {
        Self { record_decode: on, ..self }
    }

    pub fn records_decode_steps(&self) -> bool {
        self.record_decode
    }

    /// Make the next decode-step recording on this device fail the way cubecl refuses one
    /// when it closes (here: a write inside its capture window), for the recovery tests.
    pub fn spoil_next_recording(&self) {
        self.spoil_recording.store(true, Ordering::Relaxed);
    }

    /// Held through a decode-step recording, so that no other recording on this device starts
    /// meanwhile, from another engine or thread. A precaution, not a proven fix: with two
    /// engines recording on one device from two threads (`tests/conversation.rs`, recording
    /// turned on), 1 run in 10 had a recording refused for want of memory its warm-up run had
    /// held ("No room for 384 bytes in the memory held, and no page may be added"), and cubecl's
    /// `graph_prepare` relocates the memory of every stream on the device, so one recording's
    /// prepare landing between another's warm-up and recorded runs would do that. With this
    /// lock 8 runs of 8 passed, too few to tell.
    pub(crate) fn recording_alone(&self) -> MutexGuard<'_, ()> {
        // Nothing is guarded but the order: a recording that panicked leaves nothing to repair.
        self.recording.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a recording should be spoiled, once ([`Gpu::spoil_next_recording`]).
    pub(crate) fn recording_spoiled(&self) -> bool {
        self.spoil_recording.swap(false, Ordering::Relaxed)
    }

    fn from_device(device: Device, setup: WgpuSetup) -> Result<Self> {
        let probe = Tensor::<1>::zeros([1], &device)
            .try_into_primitive::<CubeBackend>()
            .map_err(|e| Error::Gpu(format!("the device is not a wgpu device: {e:?}")))?;
        let unused = probe.client.empty(16);
        let offered = setup.device.features();
        let subgroups = offered.contains(wgpu::Features::SUBGROUP) || browser_subgroups(&setup.device);
        let features = Capabilities { f16: offered.contains(wgpu::Features::SHADER_F16), subgroups };
        let record_decode = cfg!(target_family = "wasm");
        Ok(Self {
            client: probe.client.clone(),
            cube_device: probe.device.clone(),
            device,
            unused,
            setup,
            features,
            baseline: false,
            record_decode,
            runs_kernels: true,
            spoil_recording: Arc::default(),
            recording: Arc::default(),
        })
    }

    /// What the kernels may use: the device's features, none after [`Gpu::baseline`].
    pub fn capabilities(&self) -> Capabilities {
        match self.baseline {
            true => Capabilities { f16: false, subgroups: false },
            false => self.features,
        }
    }

    /// The largest buffer a kernel can bind as storage.
    pub fn max_binding_bytes(&self) -> u64 {
        let limits = self.setup.device.limits();
        limits.max_buffer_size.min(limits.max_storage_buffer_binding_size)
    }

    /// Destroy the device, as a driver reset would: from here on every read of its results
    /// fails with [`Error::DeviceLost`] (the browser's `loseDevice()`; for recovery tests).
    pub async fn lose_device(&self) {
        // cubecl treats a wgpu error as a bug until the loss is reported: let queued work
        // finish, then poll so the loss is reported before anything else reaches the device.
        let _ = self.sync().await;
        self.setup.device.destroy();
        let _ = self.setup.device.poll(wgpu::PollType::wait_indefinitely());
    }

    /// Wait until all queued GPU work is done (to time a phase).
    pub async fn sync(&self) -> Result<()> {
        self.client.sync().await.map_err(|e| execution_error(e.to_string()))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes of GPU memory our allocations use now, and the bytes the allocator has reserved.
    pub fn memory(&self) -> (u64, u64) {
        let usage = self.client.memory_report(cubecl::MemoryScope::Device).usage();
        (usage.bytes_in_use, usage.bytes_reserved)
    }

    /// Bytes in use in the persistent pool: the weights of the models loaded ([`Gpu::persistent`]).
    pub fn persistent_bytes(&self) -> u64 {
        let report = self.client.memory_report(cubecl::MemoryScope::Device);
        report.streams.iter().map(|s| s.pools.persistent.usage.bytes_in_use).sum()
    }

    /// The adapter as it names itself (`NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub fn adapter_name(&self) -> String {
        self.client.properties().identity.name.clone()
    }

    /// Upload words into a new storage buffer.
    pub fn upload_u32(&self, words: &[u32]) -> Handle {
        self.client.create_from_slice(bytemuck::cast_slice(words))
    }

    /// Start reading a buffer's words back now: the copy is queued, and everything queued
    /// before it flushed to the GPU, at this call (burn's reads start when first awaited). Work
    /// queued after it runs on while the read is awaited.
    pub fn read_u32_now(&self, handle: &Handle) -> Reading {
        let (client, handle) = (self.client.clone(), handle.clone());
        let mut read: Words = Box::pin(async move {
            let bytes = client.read_async(vec![handle]).await.map_err(|e| execution_error(e.to_string()))?;
            Ok(bytes.first().map(|b| bytemuck::pod_collect_to_vec(b)).unwrap_or_default())
        });
        // cubecl issues the copy in `read_async`, which the first poll runs.
        match read.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(words) => Reading(Some(Box::pin(std::future::ready(words)))),
            Poll::Pending => Reading(Some(read)),
        }
    }

    /// Overwrite the start of a buffer with `words`, in place, in order with the launches queued
    /// before and after: how a recorded decode step gets its next inputs.
    pub fn write_u32(&self, handle: &Handle, words: &[u32]) {
        self.client.write(handle, cubecl::bytes::Bytes::from_elems(words.to_vec()));
    }

    /// A new uninitialised buffer of `bytes` bytes.
    pub fn empty_bytes(&self, bytes: usize) -> Handle {
        self.client.empty(bytes.max(4))
    }

    /// A 16-byte buffer for a binding a kernel declares but does not read this time (an absent
    /// bias or residual): WebGPU needs every binding bound. One per device, never written.
    pub fn unused_binding(&self) -> &Handle {
        &self.unused
    }

    /// A new uninitialised f32 buffer of `len` elements.
    pub fn empty_f32(&self, len: usize) -> Handle {
        self.client.empty(len.max(1) * 4)
    }

    /// Run `load` with every buffer it allocates placed in cubecl's persistent pool (one exact-fit
    /// buffer each, never moved), then give back what it freed: for a model's weights. [Decision]
    /// Left to cubecl's default pools, weights are carved from pages sized to the largest
    /// allocation so far, which grow as larger matrices load and leave the earlier pages
    /// "outdated"; the first decode-step recording then moves every weight on them
    /// (`graph_prepare` relocates the whole device). Measured on wgpu's noop device
    /// (BENCHMARKS.md): 11 % of the 3B's reserved memory and 21 % of the 8B's was padding, and
    /// the first recording took 7–8 s of CPU and, for the 3B, 1.9 GB more memory at its peak.
    pub(crate) fn persistent<T>(&self, load: impl FnOnce() -> T) -> T {
        let load = OnThisThread(load);
        // SAFETY (of `OnThisThread`'s `Send`): cubecl 0.11.3 (pinned) runs the task inline on the
        // calling thread, between two messages that open and close the window on this thread's
        // stream (`Client::allocation_window`); nothing is sent to another thread.
        let loaded = self.client.memory_persistent_allocation((), move |()| OnThisThread(load.run()));
        // What the load freed (LLaMA's projections before they were stacked) goes back now.
        // cubecl refuses while another model on this device records a decode step; those
        // buffers then stay until the next load's cleanup (one layer's worth: later layers
        // reuse them, their sizes being the same).
        let _alone = self.recording_alone();
        let _ = self.client.memory_cleanup();
        loaded.0
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The contiguous f32 buffer behind a tensor, for a kernel to read.
    pub(crate) fn buffer_of<const D: usize>(&self, op: &'static str, t: Tensor<D>) -> Result<CubeTensor> {
        Ok(burn::backend::wgpu::into_contiguous(f32_primitive(op, t)?))
    }

    /// The f32 buffer behind a tensor that a kernel writes in place (a KV cache): it must
    /// already be contiguous, since a contiguous copy made here would take the writes.
    pub(crate) fn buffer_in_place<const D: usize>(&self, op: &'static str, t: Tensor<D>) -> Result<CubeTensor> {
        let t = f32_primitive(op, t)?;
        match t.is_contiguous() {
            true => Ok(t),
            false => Err(Error::shape(op, "the tensor to write in place is not contiguous")),
        }
    }

    /// Wrap a contiguous f32 buffer as a burn tensor of `shape`.
    pub(crate) fn tensor_of<const D: usize>(&self, handle: Handle, shape: [usize; D]) -> Tensor<D> {
        let t = CubeTensor::new_contiguous(
            self.client.clone(),
            self.cube_device.clone(),
            Shape::from(shape.to_vec()),
            handle,
            DType::F32,
        );
        Tensor::from_primitive::<CubeBackend>(t)
    }
}

/// A value that stays on the thread that made it, though the signature it passes through asks
/// for `Send` (see [`Gpu::persistent`]).
struct OnThisThread<T>(T);

// SAFETY: only built in `Gpu::persistent`, whose task runs on the calling thread.
unsafe impl<T> Send for OnThisThread<T> {}

impl<T, F: FnOnce() -> T> OnThisThread<F> {
    /// A method, so a closure calling it captures the whole wrapper rather than its field.
    fn run(self) -> T {
        (self.0)()
    }
}

/// A read back under way ([`Gpu::read_u32_now`]), the buffer's words when awaited.
///
/// Dropped before it is done, it is finished first (natively, by waiting for it; in a browser,
/// in the background): cubecl gives the staging buffer of a read dropped in flight back to its
/// pool still mapped, and the next read into it fails wgpu's validation, which poisons the device.
pub struct Reading(Option<Words>);

type Words = Pin<Box<dyn Future<Output = Result<Vec<u32>>>>>;

impl Future for Reading {
    type Output = Result<Vec<u32>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(read) = self.0.as_mut() else {
            return Poll::Ready(Err(Error::Execution("a read back awaited again after it was done".into())));
        };
        let words = std::task::ready!(read.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(words)
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let Some(read) = self.0.take() else { return };
        #[cfg(target_family = "wasm")]
        wasm_bindgen_futures::spawn_local(async move {
            let _ = read.await;
        });
        #[cfg(not(target_family = "wasm"))]
        let _ = pollster::block_on(read);
    }
}

fn f32_primitive<const D: usize>(op: &'static str, t: Tensor<D>) -> Result<CubeTensor> {
    let t = t
        .try_into_primitive::<CubeBackend>()
        .map_err(|e| Error::shape(op, format!("tensor is not on the wgpu device: {e:?}")))?;
    match t.dtype {
        DType::F32 => Ok(t),
        other => Err(Error::shape(op, format!("expected an f32 tensor, got {other:?}"))),
    }
}

/// Read a tensor back to the CPU (asynchronous so it also works in a browser).
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(|e| execution_error(e.to_string()))?;
    data.try_into_vec::<f32>().map_err(|e| execution_error(e.to_string()))
}

/// A failed sync or read back, as [`Error::DeviceLost`] when the device is gone. burn's lazy
/// read hands a lost device over as the text of cubecl's report only (`The device is poisoned`,
/// `Caused by:`, the reason, a backtrace), so the text is what is looked at, on every path.
fn execution_error(report: String) -> Error {
    if !report.contains("device is poisoned") {
        return Error::Execution(report);
    }
    let reason = report
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.contains("device is poisoned") && !l.starts_with("Caused by"));
    Error::DeviceLost(reason.map_or("no reason given", |r| r.trim_end_matches(':')).to_owned())
}

/// Milliseconds on a monotonic-enough clock, natively and in a browser.
pub fn now_ms() -> f64 {
    #[cfg(target_family = "wasm")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_family = "wasm"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1e3
    }
}
