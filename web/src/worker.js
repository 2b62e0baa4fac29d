// The engine's module worker: everything heavy (download, verification, GPU work) runs here,
// so the page thread never blocks. Messages are described in protocol.js.
import init, { Model, Sha256Stream, checkManifest } from '../pkg/fusion.js';
import { Msg } from './protocol.js';
import { hookDeviceRequests } from './device.js';
import { ensureModel, fetchModelFile, openShards } from './cache.js';

let model = null;
const aborted = new Set();
const post = (message) => self.postMessage(message);

// The engine's GPUDevice, to learn when it is lost (a driver reset, another tab's GPU crash,
// device.destroy()). After a loss this worker's wasm engine cannot go on: the page starts a new
// worker and reloads from the verified cache.
let device = null;
let lostReason = null;
hookDeviceRequests((requested) => {
  device = requested;
  device.lost.then((info) => {
    lostReason = info.message || info.reason || 'unknown reason';
    post({ type: Msg.deviceLost, reason: lostReason });
  });
});
const ready = init();

async function load({ id, manifestUrl }) {
  await ready;
  const manifestText = await fetchModelFile(manifestUrl, manifestUrl, 'manifest.json');
  // The engine's own check (format, file names, ranges) before any file it names is fetched.
  try {
    checkManifest(manifestText);
  } catch (e) {
    throw new Error(`${manifestUrl} is not a usable FUSION model manifest (made by \`fusion convert\`): ${e.message}`);
  }
  const manifest = JSON.parse(manifestText);
  await checkLimits(manifest);
  const tokenizerUrl = new URL(manifest.tokenizer ?? 'tokenizer.json', manifestUrl).href;
  const tokenizer = await fetchModelFile(manifestUrl, tokenizerUrl, 'tokenizer.json');

  const t0 = performance.now();
  const { dir, hashedBytes } = await ensureModel(manifestUrl, manifest, {
    newHasher: () => new Sha256Stream(),
    onProgress: (p) => post({ type: Msg.progress, id, ...p }),
  });
  const t1 = performance.now();
  const shards = await openShards(dir, manifest);
  try {
    model?.free();
    model = await Model.load(manifestText, tokenizer, shards.read);
  } finally {
    shards.close();
  }
  const bytes = manifest.shards.reduce((s, sh) => s + sh.bytes, 0);
  // wasm memory only grows, so its size now is its peak.
  const memory = { wasmBytes: (await ready).memory.buffer.byteLength, workerHeapBytes: self.performance.memory?.usedJSHeapSize ?? null };
  post({
    type: Msg.loaded,
    id,
    info: {
      bytes,
      hashedBytes,
      downloadMs: t1 - t0,
      uploadMs: performance.now() - t1,
      memory,
      gpu: model.capabilities(),
      config: manifest.config,
    },
  });
}

/** Refuse a model the adapter cannot hold before downloading anything. */
async function checkLimits(manifest) {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error('this browser has no WebGPU adapter');
  const largest = Math.max(...manifest.tensors.flatMap((t) => [t.data, t.scales ?? []].flat().map((r) => r.bytes)));
  const { maxBufferSize, maxStorageBufferBindingSize } = adapter.limits;
  if (largest > Math.min(maxBufferSize, maxStorageBufferBindingSize)) {
    throw new Error(
      `the model has a ${largest}-byte tensor; this GPU binds at most ${Math.min(maxBufferSize, maxStorageBufferBindingSize)} bytes`,
    );
  }
}

async function photo({ id, bitmap }) {
  if (!model) throw new Error('no model is loaded');
  const t0 = performance.now();
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { colorSpace: 'srgb', willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const t1 = performance.now();
  const photoId = await model.encodePhoto(new Uint8Array(data.buffer), canvas.width, canvas.height);
  post({ type: Msg.photo, id, photo: photoId, ms: { decode: t1 - t0, tiles: performance.now() - t1 } });
}

async function ask({ id, photo, history, question, options }) {
  if (!model) throw new Error('no model is loaded');
  const t0 = performance.now();
  let first = null;
  let pieces = 0;
  const result = JSON.parse(
    await model.ask(photo, JSON.stringify(history ?? []), question, JSON.stringify(options ?? {}), (piece) => {
      first ??= performance.now();
      pieces++;
      post({ type: Msg.text, id, piece });
      return !aborted.has(id);
    }),
  );
  aborted.delete(id);
  const end = performance.now();
  const decodeTokens = Math.max(result.tokens.length - 1, 0);
  const stats = {
    visionMs: result.timings.visionMs,
    prefillMs: result.timings.prefillMs,
    firstTokenMs: first === null ? null : first - t0,
    totalMs: end - t0,
    decodeTokensPerSecond: first === null || decodeTokens === 0 ? null : decodeTokens / ((end - first) / 1000),
    promptTokens: result.promptTokens,
    droppedTurns: result.droppedTurns,
    rebuilt: result.rebuilt,
    decodePath: result.decodePath,
    gpuBytesInUse: result.gpuBytesInUse,
    wasmBytes: (await ready).memory.buffer.byteLength,
  };
  post({ type: Msg.done, id, result: { ...result, stats } });
}

// One request at a time reaches the GPU; aborts bypass the queue.
let queue = Promise.resolve();
self.onmessage = ({ data }) => {
  if (data.type === Msg.abort) {
    aborted.add(data.id);
    return;
  }
  if (data.type === Msg.forget) {
    model?.forgetPhoto(data.photo);
    return;
  }
  if (data.type === Msg.loseDevice) {
    device?.destroy();
    post({ type: Msg.done, id: data.id, result: null });
    return;
  }
  const handler = { [Msg.load]: load, [Msg.photo]: photo, [Msg.ask]: ask }[data.type];
  if (!handler) {
    post({ type: Msg.error, id: data.id, message: `unknown request ${data.type}` });
    return;
  }
  queue = queue
    .then(() => handler(data))
    .catch(async (e) => {
      // A failure on a destroyed device can surface before device.lost settles: give it a moment,
      // so the error says what happened.
      if (device && lostReason === null) await Promise.race([device.lost, new Promise((r) => setTimeout(r, 100))]);
      // A lost device, or a wasm trap (a panic aborts the engine), leaves nothing to go on with.
      const fatal = lostReason !== null || e instanceof WebAssembly.RuntimeError;
      const message =
        lostReason !== null
          ? `the GPU device was lost (${lostReason}); the next request reloads the model onto a new device`
          : (e?.message ?? String(e));
      post({ type: Msg.error, id: data.id, message, fatal });
    });
};
