// The demo page: load the default model (or ?model=URL), ask about a photo (or without one),
// stream the answer.
import { Fusion } from '../src/index.js';

const $ = (id) => document.getElementById(id);
const status = $('status');
const MODEL = new URLSearchParams(location.search).get('model') ?? '/models/tiny/manifest.json';

function show(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  document.body.dataset.gpu = state === 'error' ? 'error' : 'ready';
  document.body.dataset.state = state;
}

const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;

let model = null;
let photo = null; // the current photo (a Blob); its tile features are computed once
let history = [];
let controller = null;

async function start() {
  if (!('gpu' in navigator) || !(await navigator.gpu.requestAdapter())) {
    throw new Error('this browser has no WebGPU adapter');
  }
  show('loading', 'Loading the model…');
  const progress = $('progress');
  progress.hidden = false;
  try {
    model = await Fusion.load(MODEL, {
      onProgress: ({ loaded, total, etaSeconds }) => {
        progress.max = total;
        progress.value = loaded;
        const eta = etaSeconds == null || loaded === total ? '' : `, about ${Math.ceil(etaSeconds)} s left`;
        show('loading', `Loading the model: ${mb(loaded)} of ${mb(total)}${eta}`);
      },
    });
  } catch (e) {
    if (/HTTP 404/.test(e.message)) {
      show('ready', `WebGPU ready. No model at ${MODEL} yet (run web/demo.sh, or pass ?model=URL).`);
      return;
    }
    throw e;
  } finally {
    progress.hidden = true;
  }
  show('model', `Model ready (${mb(model.info.bytes)}, cached for offline use).`);
  $('ask').hidden = false;
}

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
