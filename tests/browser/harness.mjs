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
