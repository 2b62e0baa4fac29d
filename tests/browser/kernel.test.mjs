// The demo page starts WebGPU, and our WGSL kernels, compiled to wasm and run in Chromium,
// match their CPU references (Tint is stricter than naga: a kernel that only passes natively
// can silently compute garbage here). WebGPU missing is a failure, never a skip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launchBrowser, openPage } from './harness.mjs';
import { KERNELS, assertWithinTolerance } from './kernel-cases.mjs';

let server, browser, page, log;

before(async () => {
  server = await serve();
  browser = await launchBrowser();
  ({ page, log } = await openPage(browser, `${server.url}/demo/`));
  await page.evaluate(async () => (await import('/src/device.js')).hookDeviceRequests());
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

// SwiftShader has subgroups (of 4) and WGSL's subgroup_id. wgpu 30 never asks for them; the
// hook of web/src/device.js does (the engine's worker installs it; this page, in before()).
test('the engine sees subgroups, asked for by device.js, and no shader-f16', async () => {
  const caps = await page.evaluate(async () => {
    const wasm = await import('/pkg/fusion.js');
    await wasm.default();
    return (await wasm.Engine.create()).capabilities();
  });
  assert.deepEqual(caps, { f16: false, subgroups: true }, log.join('\n'));
});

for (const [check, cases] of Object.entries(KERNELS))
  test(`${check} in wasm on WebGPU matches the CPU reference`, async () => {
    const seed = Math.floor(Math.random() * 2 ** 32);
    const { errors, f16 } = await page.evaluate(
      async ({ check, cases, seed }) => {
        const wasm = await import('/pkg/fusion.js');
        await wasm.default();
        const engine = await wasm.Engine.create();
        const errors = [];
        for (const args of cases) errors.push(await engine[check](...args, seed));
        return { errors, f16: engine.capabilities().f16 };
      },
      { check, cases, seed },
    );
    assertWithinTolerance(check, cases, errors, { f16, seed, log });
  });
