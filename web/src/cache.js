// The offline copy of a converted model in the Origin Private File System: each shard is
// streamed from the network straight to disk (never whole in memory), resumed with an HTTP
// Range request after an interruption, and checked against the manifest's sha256 before any
// byte is used. A shard that fails the check is deleted and fetched again, never used.
// Runs inside the worker (synchronous access handles exist only there).
//
// A shard is hashed once, not on every load: `<shard>.verified` records the sha256 it matched
// with the file's size and modification time then, and a later load hashes the shard again only
// if any of the three changed (a write into the file, a new manifest). Hashing runs at about
// 320–420 MB/s in wasm (sha2; Node 20, Chromium): 2.8 s for a 1.2 GB model on every load, 15–20 s
// for an 8B one (BENCHMARKS.md).

const ROOT = 'fusion-models';
const WRITE_PIECE = 64 << 10;

/** OPFS folder for one model, keyed by its manifest URL. */
async function modelDir(manifestUrl) {
  const root = await navigator.storage.getDirectory();
  const models = await root.getDirectoryHandle(ROOT, { create: true });
  return models.getDirectoryHandle(encodeURIComponent(manifestUrl), { create: true });
}

async function fileSize(dir, name) {
  try {
    return (await (await dir.getFileHandle(name)).getFile()).size;
  } catch {
    return -1;
  }
}

const VERIFIED = '.verified';

/** What `<shard>.verified` holds for `file` (a File) once it matched `sha256`. */
const stamp = (sha256, file) => `${sha256} ${file.size} ${file.lastModified}`;

/** Whether the cached `shard` was verified as it is now. */
async function verifiedAsIs(dir, shard) {
  try {
    const file = await (await dir.getFileHandle(shard.file)).getFile();
    const marker = await (await (await dir.getFileHandle(shard.file + VERIFIED)).getFile()).text();
    return file.size === shard.bytes && marker === stamp(shard.sha256, file);
  } catch {
    return false;
  }
}

/**
 * Hash the cached `shard`; if it matches the manifest, record that. The record is best effort:
 * with no room left to write it (a full quota), the shard is still good, only hashed again at
 * the next load.
 */
async function verify(dir, shard, newHasher) {
  if ((await hashFile(dir, shard.file, newHasher)) !== shard.sha256) return false;
  try {
    const file = await (await dir.getFileHandle(shard.file)).getFile();
    const w = await (await dir.getFileHandle(shard.file + VERIFIED, { create: true })).createWritable();
    await w.write(stamp(shard.sha256, file));
    await w.close();
  } catch {
    await dir.removeEntry(shard.file + VERIFIED).catch(() => {});
  }
  return true;
}

/** Delete a cached shard and its record. */
async function remove(dir, shard) {
  await dir.removeEntry(shard.file + VERIFIED).catch(() => {});
  await dir.removeEntry(shard.file);
}

/** sha256 of a cached file, read in chunks through `hasher` (wasm's Sha256Stream). */
async function hashFile(dir, name, newHasher) {
  const handle = await (await dir.getFileHandle(name)).createSyncAccessHandle();
  try {
    const hasher = newHasher();
    const size = handle.getSize();
    const buf = new Uint8Array(Math.min(size, 8 << 20) || 1);
    for (let at = 0; at < size; at += buf.length) {
      const n = handle.read(buf, { at });
      hasher.update(buf.subarray(0, n));
    }
    return hasher.finish();
  } finally {
    handle.close();
  }
}

/** Fetch `url` into `dir/name.part` from where it stopped; resolves when the file is whole. */
async function download(url, dir, name, expected, signal, onBytes) {
  const part = `${name}.part`;
  const handle = await (await dir.getFileHandle(part, { create: true })).createSyncAccessHandle();
  try {
    let at = handle.getSize();
    if (at > expected) {
      handle.truncate(0);
      at = 0;
    }
    if (at < expected) {
      const res = await fetch(url, { signal, headers: at > 0 ? { Range: `bytes=${at}-` } : {} });
      if (!res.ok) throw new Error(`fetching ${url}: HTTP ${res.status}`);
      if (at > 0 && res.status !== 206) {
        handle.truncate(0); // the server ignored the range: start over
        at = 0;
      }
      onBytes(at);
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (at + value.length > expected) throw new Error(`${url} is longer than the ${expected} bytes the manifest pins`);
          // In pieces, so a write that fails (storage full) keeps everything before it.
          for (let i = 0; i < value.length; i += WRITE_PIECE) {
            const piece = value.subarray(i, i + WRITE_PIECE);
            const written = handle.write(piece, { at });
            at += written;
            // write() returns how many bytes reached the file, fewer than asked when the disk
            // fills; counting the whole piece would leave a hole that a resumed download skips.
            if (written < piece.length) throw new DOMException(`wrote ${written} of ${piece.length} bytes`, 'QuotaExceededError');
          }
          onBytes(at);
        }
      } catch (e) {
        if (signal?.aborted) throw e;
        if (e?.name === 'QuotaExceededError') {
          throw new Error(
            `the browser's storage for this site is full: ${url} stopped at ${at} of ${expected} bytes (kept; verified shards are untouched). Free space or evict other models with Fusion.evict(url); loading again resumes it`,
          );
        }
        throw new Error(`download of ${url} stopped at ${at} of ${expected} bytes (${e.message ?? e}); loading again resumes it`);
      } finally {
        handle.flush();
      }
      if (at !== expected) {
        throw new Error(`download of ${url} stopped at ${at} of ${expected} bytes; loading again resumes it`);
      }
    }
  } finally {
    handle.close();
  }
  const file = await dir.getFileHandle(part);
  await file.move(name);
}

/**
 * A small model file (manifest.json, tokenizer.json): from the network when it answers, kept in
 * OPFS next to the shards so an offline load finds it.
 */
export async function fetchModelFile(manifestUrl, url, name) {
  const dir = await modelDir(manifestUrl);
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`fetching ${url}: HTTP ${res.status}`);
    const text = await res.text();
    const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
    await w.write(text);
    await w.close();
    return text;
  } catch (e) {
    const cached = await dir
      .getFileHandle(name)
      .then((h) => h.getFile())
      .then((f) => f.text())
      .catch(() => null);
    if (cached === null) {
      const entries = [];
      for await (const k of dir.keys()) entries.push(k);
      if (entries.length === 0) await evictModel(manifestUrl).catch(() => {}); // leave no empty folder behind
      throw e;
    }
    return cached;
  }
}

/**
 * Make every shard of `manifest` present and verified in OPFS. Returns the folder handle and
 * how many bytes this call hashed (`{ dir, hashedBytes }`).
 * `onProgress({ file, loaded, total, etaSeconds })` reports bytes over the whole model.
 */
export async function ensureModel(manifestUrl, manifest, { newHasher, onProgress, signal }) {
  const dir = await modelDir(manifestUrl);
  const total = manifest.shards.reduce((s, sh) => s + sh.bytes, 0);
  const base = new URL('.', manifestUrl);
  let done = 0;
  const started = performance.now();
  let fetchedSinceStart = 0;
  const report = (file, loaded) => {
    const rate = fetchedSinceStart / Math.max((performance.now() - started) / 1000, 1e-3);
    const remaining = total - loaded;
    onProgress?.({ file, loaded, total, etaSeconds: rate > 0 ? remaining / rate : null });
  };

  const estimate = await navigator.storage.estimate?.();
  let hashedBytes = 0;
  for (const shard of manifest.shards) {
    signal?.throwIfAborted();
    let size = await fileSize(dir, shard.file);
    if (size === shard.bytes && (await verifiedAsIs(dir, shard))) {
      done += shard.bytes;
      report(shard.file, done);
      continue;
    }
    if (size === shard.bytes) {
      hashedBytes += shard.bytes;
      if (await verify(dir, shard, newHasher)) {
        done += shard.bytes;
        report(shard.file, done);
        continue;
      }
    }
    if (size >= 0) await remove(dir, shard); // corrupt or stale: never used
    const partSize = Math.max(await fileSize(dir, `${shard.file}.part`), 0);
    if (estimate && estimate.quota - estimate.usage < shard.bytes - partSize) {
      throw new Error(
        `not enough storage for ${shard.file}: ${shard.bytes - partSize} bytes needed, ${estimate.quota - estimate.usage} free`,
      );
    }
    let last = partSize;
    await download(new URL(shard.file, base).href, dir, shard.file, shard.bytes, signal, (at) => {
      fetchedSinceStart += at - last;
      last = at;
      report(shard.file, done + at);
    });
    hashedBytes += shard.bytes;
    if (!(await verify(dir, shard, newHasher))) {
      await remove(dir, shard);
      throw new Error(`${shard.file} does not match the sha256 the manifest pins; it was deleted, loading again fetches it anew`);
    }
    done += shard.bytes;
    report(shard.file, done);
  }
  return { dir, hashedBytes };
}

/** Open every shard for synchronous reads: `read(file, offset, length) → Uint8Array`, valid until the next read. */
export async function openShards(dir, manifest) {
  const handles = new Map();
  for (const shard of manifest.shards) {
    handles.set(shard.file, await (await dir.getFileHandle(shard.file)).createSyncAccessHandle());
  }
  // One buffer for every read, grown when a read is longer: the engine copies each read into
  // wasm memory at once. A new array per read left the whole model in garbage ArrayBuffers for
  // the collector while it loaded (tests/browser/memory.test.mjs measures the worker's).
  let buf = new Uint8Array(0);
  return {
    read(file, offset, length) {
      if (buf.length < length) buf = new Uint8Array(length);
      const n = handles.get(file).read(buf.subarray(0, length), { at: offset });
      return buf.subarray(0, n);
    },
    close() {
      for (const h of handles.values()) h.close();
    },
  };
}

/** URLs of the models cached in this origin. */
export async function cachedModels() {
  const root = await navigator.storage.getDirectory();
  const models = await root.getDirectoryHandle(ROOT, { create: true });
  const out = [];
  for await (const name of models.keys()) out.push(decodeURIComponent(name));
  return out;
}

/** Delete a cached model. */
export async function evictModel(manifestUrl) {
  const root = await navigator.storage.getDirectory();
  const models = await root.getDirectoryHandle(ROOT, { create: true });
  await models.removeEntry(encodeURIComponent(manifestUrl), { recursive: true }).catch(() => {});
}
