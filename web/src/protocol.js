// Typed messages between the page (index.js) and the engine's worker (worker.js).
//
// page → worker
//   { type: 'load', id, manifestUrl }
//   { type: 'photo', id, bitmap }                      bitmap: ImageBitmap (transferred)
//   { type: 'ask', id, photo, history, question, options }
//   { type: 'abort', id }                              stops the ask with that id
//   { type: 'forget', photo }
//   { type: 'loseDevice', id }                         destroys the GPU device (recovery tests)
// worker → page
//   { type: 'progress', id, file, loaded, total, etaSeconds }
//   { type: 'loaded', id, info }
//   { type: 'photo', id, photo, ms }
//   { type: 'text', id, piece }
//   { type: 'done', id, result }
//   { type: 'error', id, message, fatal }             fatal: the worker cannot go on
//   { type: 'deviceLost', reason }                     the GPU device is gone
export const Msg = Object.freeze({
  load: 'load',
  photo: 'photo',
  ask: 'ask',
  abort: 'abort',
  forget: 'forget',
  loseDevice: 'loseDevice',
  deviceLost: 'deviceLost',
  progress: 'progress',
  loaded: 'loaded',
  text: 'text',
  done: 'done',
  error: 'error',
});
