// Serves web/ on localhost: the demo page, the wasm package and (later) converted models.
// Usage: node web/serve.mjs [--port N]   (N=0 picks a free port; the URL is printed)
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.d.ts': 'text/plain; charset=utf-8',
};

/**
 * Start a static server; resolves to { url, close }. `mounts` maps URL prefixes to folders
 * (e.g. { '/models/': '/tmp/models' }); everything else is served from `root`. Byte ranges
 * (`Range: bytes=N-`) are honoured so interrupted model downloads resume. With `cors`, any
 * origin may read the files (to test pages that load models from another origin).
 */
export async function serve({
  root = fileURLToPath(new URL('.', import.meta.url)),
  mounts = {},
  port = 0,
  host = '127.0.0.1',
  onRequest,
  cors = false,
} = {}) {
  root = resolve(root);
  // Serve one request (also for a test that held it back in `onRequest`).
  const handle = async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      if (path === '/') {
        res.writeHead(302, { location: '/demo/' }).end();
        return;
      }
      const mount = Object.keys(mounts).find((prefix) => path.startsWith(prefix));
      const base = mount ? resolve(mounts[mount]) : root;
      let file = normalize(join(base, mount ? path.slice(mount.length) : path));
      if (file !== base && !file.startsWith(base + sep)) {
        res.writeHead(403).end('forbidden');
        return;
      }
      let info = await stat(file).catch(() => null);
      if (info?.isDirectory()) {
        file = join(file, 'index.html');
        info = await stat(file).catch(() => null);
      }
      if (!info?.isFile()) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
        return;
      }
      const headers = {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-cache',
        'accept-ranges': 'bytes',
        ...(cors && { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'content-range, content-length' }),
      };
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      if (range && start >= info.size) {
        res.writeHead(416, { 'content-range': `bytes */${info.size}` }).end();
        return;
      }
      if (range) headers['content-range'] = `bytes ${start}-${info.size - 1}/${info.size}`;
      headers['content-length'] = info.size - start;
      res.writeHead(range ? 206 : 200, headers);
      createReadStream(file, { start }).pipe(res);
    } catch (e) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(String(e));
    }
  };
  const server = createServer((req, res) => onRequest?.(req, res) || handle(req, res)); // a test may take a request over
  await new Promise((ok, fail) => server.once('error', fail).listen(port, host, ok));
  const url = `http://${host}:${server.address().port}`;
  return { url, handle, close: () => new Promise((ok) => server.close(ok)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const port = Number(arg('--port') ?? 8080);
  const models = arg('--models');
  const { url } = await serve({ port, mounts: models ? { '/models/': models } : {} });
  console.log(`FUSION demo: ${url}/demo/  (Ctrl-C to stop)`);
}
