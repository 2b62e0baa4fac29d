// The service worker precaches every file the page and the engine load (plain Node): a module
// left out of its list works online and breaks the offline app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const web = fileURLToPath(new URL('../../web/', import.meta.url));

test('the offline app shell lists every script, page asset and the wasm engine', () => {
  const sw = readFileSync(`${web}sw.js`, 'utf8');
  const shell = JSON.parse(
    sw
      .match(/const SHELL = (\[[^\]]*\])/)[1]
      .replace(/'/g, '"')
      .replace(/,\s*\]/, ']'),
  );
  const needed = [
    ...readdirSync(`${web}demo`).map((f) => `/demo/${f}`),
    ...readdirSync(`${web}src`)
      .filter((f) => f.endsWith('.js'))
      .map((f) => `/src/${f}`),
    '/pkg/fusion.js',
    '/pkg/fusion_bg.wasm',
  ];
  assert.deepEqual(
    needed.filter((f) => !shell.includes(f)),
    [],
  );
});
