// The PWA's service worker: the app shell (page, scripts, wasm) is precached so the demo opens
// with the network off; other same-origin requests (a model's manifest.json and tokenizer.json)
// go to the network first and fall back to the last copy. Model shards are never cached here:
// the engine keeps its verified copy in OPFS (web/src/cache.js), once.
const CACHE = 'fusion-shell-v3';
const SHELL = [
  '/demo/',
  '/demo/index.html',
  '/demo/main.js',
  '/demo/style.css',
  '/demo/app.webmanifest',
  '/demo/icon.svg',
  '/demo/models.json',
  '/src/index.js',
  '/src/chat.js',
  '/src/worker.js',
  '/src/cache.js',
  '/src/protocol.js',
  '/src/device.js',
  '/src/photo.js',
  '/pkg/fusion.js',
  '/pkg/fusion_bg.wasm',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== location.origin || url.pathname.endsWith('.bin')) return;
  event.respondWith(
    fetch(event.request)
      .then((res) => {
        if (res.ok && res.status === 200) {
          const copy = res.clone();
          caches.open(CACHE).then((c) => c.put(event.request, copy));
        }
        return res;
      })
      .catch(async () => (await caches.match(event.request, { ignoreSearch: true })) ?? Response.error()),
  );
});
