// Shared browser-test setup: a static server for web/ and Debian's Chromium with WebGPU.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../../web/serve.mjs';

export { serve };

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The native CLI that `cargo test` built (tiny models, conversion, reference answers). */
export const fusionCli = join(process.env.CARGO_TARGET_DIR ?? join(repoRoot, 'target'), 'debug', 'fusion');

/**
 * A fresh temporary folder, deleted when this test file's process exits: models and browser
 * profiles run to gigabytes (a 1 GB model, its copy in OPFS), and a CI machine's disk is shared
 * with the builds. Chromium's storage quota shrinks with the free disk: a CI run that kept them
 * had the 1 GB model's download refused as storage full.
 */
export function scratch(prefix) {
  const dir = mkdtempSync(join(tmpdir(), `fusion-${prefix}-`));
  scratchDirs.push(dir);
  return dir;
}
const scratchDirs = [];
process.once('exit', () => scratchDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/**
 * A generated tiny checkpoint (`fusion tiny … args`) in `dir/src`, converted to int4 in
 * `dir/tiny`; `dir` defaults to a fresh scratch folder. Returns `dir`.
 */
export function tinyModel(args = [], dir = scratch('models')) {
  execFileSync(fusionCli, ['tiny', join(dir, 'src'), ...args]);
  execFileSync(fusionCli, ['convert', join(dir, 'src'), join(dir, 'tiny')]);
  return dir;
}

// WebGPU on SwiftShader in headless Chromium; the network flags keep Chromium from calling
// out (this machine has no network beyond localhost). See shared/notes/toolchain.md.
const CHROMIUM_ARGS = [
  '--headless=new',
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--no-first-run',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-precise-memory-info',
];

export async function launchBrowser() {
  return chromium.launchPersistentContext(scratch('chromium'), {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** Open `url` and collect the page's console and errors, so a failing test can show them. */
export async function openPage(context, url) {
  const page = await context.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(url);
  return { page, log };
}

/**
 * Samples the JS memory of `page` and of its workers every `ms` through the DevTools protocol:
 * each one's V8 heap and the backing stores of its ArrayBuffers (where downloaded bytes sit;
 * `performance.memory` counts neither those nor anything in a worker, which has none). Not a
 * WebAssembly memory: `model.info.memory.wasmBytes` says that. Start it before the workers start;
 * `await sampler.stop()` gives `{ pagePeakBytes, workerPeakBytes, workers, samples }`: the highest
 * page figure, the highest sum over the workers in one sampling round, how many workers were
 * seen, and how many rounds measured at least one.
 */
export async function sampleHeaps(context, page, ms = 20) {
  const cdp = await context.newCDPSession(page);
  const workers = new Set();
  const pending = new Map();
  let nextId = 0;
  const bytesOf = (usage) => (usage ? usage.usedSize + usage.backingStorageSize : 0);
  cdp.on('Target.attachedToTarget', (e) => e.targetInfo.type === 'worker' && workers.add(e.sessionId));
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    const reply = JSON.parse(e.message);
    pending.get(reply.id)?.resolve(bytesOf(reply.result));
  });
  // A worker that ends (unload() terminates it) never answers what was in flight: those read 0.
  cdp.on('Target.detachedFromTarget', (e) => {
    workers.delete(e.sessionId);
    for (const p of pending.values()) if (p.sessionId === e.sessionId) p.resolve(0);
  });
  // Not flattened: the workers' replies come back as events of this session, which
  // playwright-core's CDPSession can send and receive (it cannot address a child session).
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: false });
  const workerBytes = (sessionId) =>
    new Promise((resolve) => {
      const id = ++nextId;
      const done = (bytes) => {
        pending.delete(id);
        resolve(bytes);
      };
      pending.set(id, { sessionId, resolve: done });
      const message = JSON.stringify({ id, method: 'Runtime.getHeapUsage' });
      cdp.send('Target.sendMessageToTarget', { sessionId, message }).catch(() => done(0));
    });
  const peaks = { pagePeakBytes: 0, workerPeakBytes: 0, workers: 0, samples: 0 };
  let running = true;
  const loop = (async () => {
    while (running) {
      const sessions = [...workers];
      const [page, ...each] = await Promise.all([cdp.send('Runtime.getHeapUsage').then(bytesOf, () => 0), ...sessions.map(workerBytes)]);
      peaks.pagePeakBytes = Math.max(peaks.pagePeakBytes, page);
      peaks.workers = Math.max(peaks.workers, sessions.length);
      if (sessions.length > 0) {
        peaks.workerPeakBytes = Math.max(
          peaks.workerPeakBytes,
          each.reduce((a, b) => a + b, 0),
        );
        peaks.samples++;
      }
      await new Promise((r) => setTimeout(r, ms));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await cdp.detach().catch(() => {});
      return peaks;
    },
  };
}
