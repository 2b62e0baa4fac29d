// wgpu requests the engine's GPUDevice inside wasm. A hook on GPUAdapter.requestDevice, installed
// before the engine starts, is our one handle on that request:
// - it asks for `subgroups` too, where the adapter offers them and WGSL has the `subgroup_id`
//   builtins: wgpu 30's WebGPU backend has no name for the feature, so it never asks, and the
//   int4 matvec of every decode step (shaders/int4_matvec.wgsl) reduces with subgroupAdd and one
//   barrier instead of a five-barrier tree in workgroup memory where the device has them (the
//   engine reads the GPUDevice's own features: crate/src/gpu.rs, `browser_subgroups`);
// - it hands the device to `onDevice`, e.g. to learn when it is lost.

/** Hook every later GPUAdapter.requestDevice in this realm (a no-op without WebGPU). */
export function hookDeviceRequests(onDevice = () => {}) {
  const requestDevice = globalThis.GPUAdapter?.prototype.requestDevice;
  if (!requestDevice) return;
  GPUAdapter.prototype.requestDevice = async function (descriptor = {}) {
    const features = [...(descriptor.requiredFeatures ?? [])];
    if (this.features.has('subgroups') && navigator.gpu.wgslLanguageFeatures?.has('subgroup_id') && !features.includes('subgroups')) {
      features.push('subgroups');
    }
    const device = await requestDevice.call(this, { ...descriptor, requiredFeatures: features });
    onDevice(device);
    return device;
  };
}
