// WebGPU in Node: Dawn (npm `webgpu`, with Tint, the WGSL compiler Chromium uses) on Mesa 25's
// lavapipe, which .ci/setup unpacks from bookworm-backports. Chromium's SwiftShader has no
// shader-f16, and Dawn refuses Debian 12's own lavapipe (Mesa 22), so this is where Tint
// compiles and runs the engine's f16 kernels: what a browser on a GPU with shader-f16 runs.
import { create, globals } from 'webgpu';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hookDeviceRequests } from '../../web/src/device.js';

/** The engine's wasm module (web/pkg) initialised on Dawn: `(await dawnWasm()).Engine.create()`. */
export async function dawnWasm() {
  const icd = process.env.FUSION_DAWN_ICD;
  if (!icd || !existsSync(icd)) {
    throw new Error(`Dawn's Vulkan driver (FUSION_DAWN_ICD=${icd}) is missing: run .ci/setup, with .ci/env.sh sourced`);
  }
  // Read by the Vulkan loader when Dawn opens its instance, in create().
  process.env.VK_ICD_FILENAMES = icd;
  Object.assign(globalThis, globals);
  // wgpu's WebGPU backend finds `navigator.gpu` through the global scope's `Window` (or
  // `WorkerGlobalScope`) constructor: a page's, which Node has neither of.
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true });
  globalThis.Window ??= class Window {};
  hookDeviceRequests();
  const wasm = await import('../../web/pkg/fusion.js');
  await wasm.default({ module_or_path: await readFile(new URL('../../web/pkg/fusion_bg.wasm', import.meta.url)) });
  return wasm;
}
