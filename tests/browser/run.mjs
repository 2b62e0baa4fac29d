// Runs the browser test files (all, or those named) one after another, each in a process of
// its own as `node --test` does, and prints each file's time, the slowest files and a closing
// `N passed, N failed` line. A test that runs past 15 minutes fails instead of holding CI.
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const named = process.argv.slice(2);
const files = (
  named.length > 0
    ? named
    : readdirSync(here)
        .filter((f) => f.endsWith('.test.mjs'))
        .sort()
).map((f) => join(here, f));

const times = [];
let [passed, failed] = [0, 0];
for (const file of files) {
  const start = performance.now();
  const stream = run({ files: [file], concurrency: 1, timeout: 15 * 60 * 1000 });
  stream.on('test:pass', ({ nesting }) => nesting === 0 && passed++);
  stream.on('test:fail', ({ nesting }) => nesting === 0 && failed++);
  const report = stream.compose(spec);
  report.pipe(process.stdout, { end: false });
  await new Promise((resolve) => report.once('end', resolve));
  times.push([(performance.now() - start) / 1000, file.slice(here.length + 1)]);
}
const minutes = (s) => `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
console.log('\nbrowser test files, slowest first:');
for (const [s, file] of times.sort((a, b) => b[0] - a[0])) console.log(`  ${minutes(s).padStart(7)}  ${file}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
