// The demo page: pick a model from models.json (or ?model=URL), load it with progress, ask about
// a photo (or without one), stream the answer. models.json lists the models the page knows (an
// operator points each `manifest` at where they host converted shards); the first one, or
// ?model=, loads at start; a cached one can be deleted.
import { Fusion } from '../src/index.js';

const $ = (id) => document.getElementById(id);
const status = $('status');
const asked = new URLSearchParams(location.search).get('model');
const absolute = (url) => new URL(url, location.href).href;

function show(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  document.body.dataset.gpu = state === 'error' ? 'error' : 'ready';
  document.body.dataset.state = state;
}

const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
const size = (b) => (b >= 1e9 ? `${(b / 1e9).toFixed(1)} GB` : mb(b));

let model = null;
let photo = null; // the current photo (a Blob); its tile features are computed once
let history = [];
let controller = null;

/** The models the page knows: models.json, with ?model= first when it is not listed. */
async function catalog() {
  let list = [];
  try {
    const res = await fetch('models.json');
    if (res.ok) list = await res.json();
  } catch {
    // No list: the page still opens ?model= or the default.
  }
  if (list.length === 0) list = [{ name: 'Default model', manifest: '/models/tiny/manifest.json' }];
  if (asked && !list.some((m) => absolute(m.manifest) === absolute(asked))) list.unshift({ name: asked, manifest: asked });
  return list;
}

let models = [];
let loaded = null; // the index of the model loaded

/** The picker: each model with its size and whether it is offline already. */
async function showModels(selected) {
  const offline = new Set(await Fusion.cached());
  $('model').replaceChildren(
    ...models.map((m, i) => {
      const facts = [m.variant, m.bytes && size(m.bytes), offline.has(absolute(m.manifest)) && 'offline'].filter(Boolean);
      const label = facts.length ? `${m.name} (${facts.join(', ')})` : m.name;
      return Object.assign(document.createElement('option'), { value: i, textContent: label, selected: i === selected });
    }),
  );
  $('delete').disabled = !offline.has(absolute(models[selected].manifest));
}

async function load(i) {
  const entry = models[i];
  $('ask').hidden = true;
  await model?.unload();
  model = null;
  loaded = null;
  history = [];
  $('chat').replaceChildren();
  // A random-weight model answers noise; say so, and how to open a real one.
  $('notice').hidden = !entry.random;
  show('loading', `Loading ${entry.name}…`);
  const progress = $('progress');
  progress.hidden = false;
  try {
    model = await Fusion.load(entry.manifest, {
      onProgress: ({ loaded, total, etaSeconds }) => {
        progress.max = total;
        progress.value = loaded;
        const eta = etaSeconds == null || loaded === total ? '' : `, about ${Math.ceil(etaSeconds)} s left`;
        show('loading', `Loading ${entry.name}: ${mb(loaded)} of ${mb(total)}${eta}`);
      },
    });
  } catch (e) {
    if (/HTTP 404/.test(e.message)) {
      show('ready', `WebGPU ready. No model at ${entry.manifest} yet (see models/README.md, or pass ?model=URL).`);
      return;
    }
    throw e;
  } finally {
    progress.hidden = true;
    await showModels(i);
  }
  loaded = i;
  show('model', `${entry.name} ready (${mb(model.info.bytes)}, cached for offline use).`);
  $('ask').hidden = false;
}

async function start() {
  if (!('gpu' in navigator) || !(await navigator.gpu.requestAdapter())) {
    throw new Error('this browser has no WebGPU adapter');
  }
  models = await catalog();
  const first = asked ? models.findIndex((m) => absolute(m.manifest) === absolute(asked)) : 0;
  await showModels(first);
  $('models').hidden = false;
  await load(first);
}

const fail = (e) => show('error', `Cannot load: ${e.message ?? e}`);
$('model').addEventListener('change', (e) => load(Number(e.target.value)).catch(fail));
$('delete').addEventListener('click', async () => {
  const i = Number($('model').value);
  if (loaded === i) {
    await model.unload();
    model = null;
    loaded = null;
    $('ask').hidden = true;
  }
  await Fusion.evict(models[i].manifest);
  await showModels(i);
  show('ready', `Deleted the offline copy of ${models[i].name}. Choose it again to download it.`);
});

function setPhoto(blob) {
  if (!blob?.type.startsWith('image/')) return;
  photo = blob;
  history = [];
  $('chat').replaceChildren();
  $('preview').src = URL.createObjectURL(blob);
}

$('file').addEventListener('change', (e) => setPhoto(e.target.files[0]));
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  setPhoto(e.dataTransfer.files[0]);
});
document.addEventListener('paste', (e) => setPhoto([...e.clipboardData.files][0]));

$('stop').addEventListener('click', () => controller?.abort());

$('ask').addEventListener('submit', async (e) => {
  e.preventDefault();
  const question = $('question').value.trim();
  if (!question) return;
  const q = Object.assign(document.createElement('p'), { className: 'q', textContent: question });
  const a = Object.assign(document.createElement('p'), { className: 'a' });
  $('chat').append(q, a);
  $('question').value = '';
  controller = new AbortController();
  $('go').disabled = true;
  $('stop').disabled = false;
  show('answering', 'Answering…');
  try {
    // Without a photo the plain language model answers; choosing one starts a new conversation.
    for await (const piece of model.ask({ image: photo ?? undefined, question, history, signal: controller.signal, maxNewTokens: 256 })) {
      a.textContent += piece;
    }
    history.push([question, a.textContent.trim()]);
    show('model', photo ? 'Ask a follow-up, or choose another photo.' : 'Ask a follow-up, or choose a photo to ask about.');
  } catch (err) {
    // A stopped answer stays in the conversation, as the engine keeps it.
    if (err.name === 'AbortError') history.push([question, a.textContent.trim()]);
    show(err.name === 'AbortError' ? 'model' : 'error', err.name === 'AbortError' ? 'Stopped.' : `Error: ${err.message}`);
  } finally {
    $('go').disabled = false;
    $('stop').disabled = true;
    const s = model.stats();
    const t = s.lastAnswer;
    const parts = [];
    if (s.photo) parts.push(`image decode ${Math.round(s.photo.decode)} ms`, `tiles ${Math.round(s.photo.tiles)} ms`);
    if (t?.visionMs) parts.push(`vision ${Math.round(t.visionMs)} ms`);
    if (t?.prefillMs != null) parts.push(`prefill ${Math.round(t.prefillMs)} ms`);
    if (t?.firstTokenMs != null) parts.push(`first token ${Math.round(t.firstTokenMs)} ms`);
    if (t?.decodeTokensPerSecond != null) parts.push(`${t.decodeTokensPerSecond.toFixed(1)} tokens/s`);
    $('timings').textContent = parts.join(' · ');
  }
});

// The PWA: precache the app shell so the page and the cached model work offline.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn('no offline support:', e));
}

start().catch((e) => show('error', `Cannot start: ${e.message ?? e}`));
