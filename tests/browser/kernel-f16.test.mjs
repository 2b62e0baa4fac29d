// The engine's kernels compiled by Tint with shader-f16 (Dawn on lavapipe: see dawn.mjs), against
// their CPU references. A kernel in f16 that Tint compiles differently from naga fails here
// and nowhere else in CI: naga runs the native tests, SwiftShader has no f16.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { dawnWasm } from './dawn.mjs';
import { KERNELS, assertWithinTolerance } from './kernel-cases.mjs';

let engine;

before(async () => {
  engine = await (await dawnWasm()).Engine.create();
});

// Subgroups asked for by web/src/device.js (see kernel.test.mjs).
test('Dawn gives the engine shader-f16 and subgroups', () => {
  assert.deepEqual(engine.capabilities(), { f16: true, subgroups: true });
});

for (const [check, cases] of Object.entries(KERNELS))
  test(`${check} in wasm on Dawn with shader-f16 matches the CPU reference`, async () => {
    const seed = Math.floor(Math.random() * 2 ** 32);
    const errors = [];
    for (const args of cases) errors.push(await engine[check](...args, seed));
    assertWithinTolerance(check, cases, errors, { f16: engine.capabilities().f16, seed });
  });
