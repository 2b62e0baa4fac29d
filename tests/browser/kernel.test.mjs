// The demo page starts WebGPU, and our WGSL kernels, compiled to wasm and run in Chromium,
// match their CPU references (Tint is stricter than naga: a kernel that only passes natively
// can silently compute garbage here). WebGPU missing is a failure, never a skip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launchBrowser, openPage } from './harness.mjs';

let server, browser, page, log;

before(async () => {
  server = await serve();
  browser = await launchBrowser();
  ({ page, log } = await openPage(browser, `${server.url}/demo/`));
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('the demo page initialises WebGPU', async () => {
  await page.waitForSelector('body[data-gpu]', { timeout: 60_000 });
  const state = await page.getAttribute('body', 'data-gpu');
  const text = await page.textContent('#status');
  assert.equal(state, 'ready', `${text}\n${log.join('\n')}`);
});

// Same tolerance as the native test: f32 accumulation against an f64 reference.
const TOL = 1e-5;

// SwiftShader has subgroups, but wgpu 30's WebGPU backend has no name for the feature, so
// it never asks for it and the engine reduces in workgroup memory here. When a wgpu update
// brings subgroups to the browser this fails: then add subgroup cases below.
test('the engine sees the device without shader-f16 or subgroups', async () => {
  const caps = await page.evaluate(async () => {
    const wasm = await import('/pkg/fusion.js');
    await wasm.default();
    return (await wasm.Engine.create()).capabilities();
  });
  assert.deepEqual(caps, { f16: false, subgroups: false }, log.join('\n'));
});

const KERNELS = {
  // m, n, k, group, subgroup reduction (else workgroup memory)
  checkInt4Matvec: [
    [1, 37, 40, 32, false],
    [3, 129, 333, 32, false],
    [8, 257, 1000, 128, false],
    [2, 70, 4096, 64, false],
  ],
  // m, n (gate rows, then as many up rows), k, group
  checkInt4MatvecSwiglu: [
    [1, 16384, 3072, 32],
    [3, 74, 96, 32],
  ],
  checkInt4Matmul: [
    [9, 17, 40, 32],
    [67, 130, 200, 64],
    [33, 129, 333, 32],
  ],
  // heads, kv heads, rows, keys, head dim, spare cache rows, causal, key bias
  checkAttention: [
    [6, 2, 5, 133, 12, 123, true, false], // prefill after cached positions, GQA
    [4, 4, 1, 300, 24, 212, true, false], // split-K decode
    [32, 8, 1, 200, 128, 56, true, false], // LLaMA-3.1-8B decode heads
    [3, 3, 70, 70, 9, 0, false, true], // vision rows, padded keys, odd head dim
  ],
  checkRmsNorm: [
    [1, 3072],
    [5, 257],
  ],
  // positions, heads, kv heads, head dim, packed as the fused projection, first cache row, cache rows
  checkRope: [
    [1, 32, 32, 96, true, 650, 1024],
    [7, 6, 2, 10, false, 5, 13],
  ],
  checkSwiglu: [
    [1, 8192],
    [3, 257],
  ],
};

for (const [check, cases] of Object.entries(KERNELS)) test(`${check} in wasm on WebGPU matches the CPU reference`, async () => {
  const seed = Math.floor(Math.random() * 2 ** 32);
  const errors = await page.evaluate(
    async ({ check, cases, seed }) => {
      const wasm = await import('/pkg/fusion.js');
      await wasm.default();
      const engine = await wasm.Engine.create();
      const out = [];
      for (const args of cases) out.push(await engine[check](...args, seed));
      return out;
    },
    { check, cases, seed },
  );
  cases.forEach((args, i) => {
    assert.ok(errors[i] < TOL, `${check}(${args}) seed=${seed}: rel L2 ${errors[i]}\n${log.join('\n')}`);
  });
});
