// The demo page: starts the engine on WebGPU and reports what it found.
import init, { Engine } from '../pkg/fusion.js';

const status = document.getElementById('status');

function show(state, text) {
  status.dataset.state = state;
  status.textContent = text;
  document.body.dataset.gpu = state;
}

try {
  if (!('gpu' in navigator)) throw new Error('this browser has no WebGPU (navigator.gpu is missing)');
  await init();
  await Engine.create();
  show('ready', 'WebGPU ready. No model yet: model loading arrives with the model issues.');
} catch (e) {
  show('error', `Cannot start: ${e.message ?? e}`);
}
