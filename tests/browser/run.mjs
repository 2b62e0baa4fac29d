// Runs the browser test files (all, or those named) one after another, each by `node --test`
// in a process of its own, and prints each file's time, the slowest files and a closing
// `N passed, N failed` line. A test that runs past 15 minutes fails instead of holding CI.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const named = process.argv.slice(2);
const files =
  named.length > 0
    ? named
    : readdirSync(here)
        .filter((f) => f.endsWith('.test.mjs'))
        .sort();
const args = ['--test', '--test-timeout=900000', '--test-reporter=spec'];

const times = [];
let [passed, failed] = [0, 0];
for (const file of files) {
  const start = performance.now();
  const child = spawn(process.execPath, [...args, file], { cwd: here, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    output += chunk;
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  // The spec reporter's summary: `ℹ pass N`, `ℹ fail N` (a file that cannot start has none).
  const count = (what) => Number(output.match(new RegExp(`^ℹ ${what} (\\d+)$`, 'm'))?.[1] ?? 0);
  passed += count('pass');
  failed += count('fail') + count('cancelled') + (code !== 0 && count('fail') + count('cancelled') === 0 ? 1 : 0);
  times.push([(performance.now() - start) / 1000, file]);
}
const minutes = (s) => `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
console.log('\nbrowser test files, slowest first:');
for (const [s, file] of times.sort((a, b) => b[0] - a[0])) console.log(`  ${minutes(s).padStart(7)}  ${file}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
