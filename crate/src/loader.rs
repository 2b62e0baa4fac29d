//! Reading tensors from a Hugging Face checkpoint: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Each tensor is read on its own (header, then its byte range),
//! so loading never holds more than one tensor of the checkpoint in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use serde::Deserialize;

use crate::error::{Error, Result};

/// A tensor on the host, converted to f32.
#[derive(Clone, Debug)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Where the model's tensors come from: a checkpoint on disk, a converted model, or memory.
pub trait TensorSource {
    /// The tensor called `name`, as f32.
    fn tensor(&mut self, name: &str) -> Result<HostTensor>;
    /// The shape of `name`, without reading it; `None` if absent.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// `name` as stored int4, when the source holds it so (a converted model).
    fn int4(&mut self, _name: &str) -> Result<Option<crate::quant::Int4Weight>> {
        Ok(None)
    }

    /// `name` copied from storage straight into GPU buffers, chunk by chunk, never whole on the
    /// host, when the source stores it as `dtype` (a converted model's int4 or f16 tensors).
    fn upload(&mut self, _name: &str, _dtype: crate::manifest::DType, _gpu: &crate::Gpu) -> Result<Option<GpuTensor>> {
        Ok(None)
    }
}

/// A source that says how many tensors the model has taken from it so far (a progress bar's
/// position), each name counted once whichever way it was read.
pub struct Reporting<'a> {
    source: &'a mut dyn TensorSource,
    taken: std::collections::HashSet<String>,
    report: &'a mut dyn FnMut(usize),
}

impl<'a> Reporting<'a> {
    pub fn new(source: &'a mut dyn TensorSource, report: &'a mut dyn FnMut(usize)) -> Self {
        Self { source, taken: Default::default(), report }
    }

    fn took(&mut self, name: &str) {
        if self.taken.insert(name.to_owned()) {
            (self.report)(self.taken.len());
        }
    }
}

impl TensorSource for Reporting<'_> {
    fn tensor(&mut self, name: &str) -> Result<HostTensor> {
        let t = self.source.tensor(name)?;
        self.took(name);
        Ok(t)
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.source.shape(name)
    }

    fn int4(&mut self, name: &str) -> Result<Option<crate::quant::Int4Weight>> {
        let w = self.source.int4(name)?;
        if w.is_some() {
            self.took(name);
        }
        Ok(w)
    }

    fn upload(&mut self, name: &str, dtype: crate::manifest::DType, gpu: &crate::Gpu) -> Result<Option<GpuTensor>> {
        let t = self.source.upload(name, dtype, gpu)?;
        if t.is_some() {
            self.took(name);
        }
        Ok(t)
    }
}

/// A tensor's stored bytes in GPU buffers, laid out as the converted format keeps them
/// (`manifest.rs`): int4 packed words and f16 scale pairs, or f16 values in pairs.
pub struct GpuTensor {
    pub shape: Vec<usize>,
    pub group: Option<usize>,
    pub data: cubecl::server::Handle,
    pub scales: Option<cubecl::server::Handle>,
}

/// Bytes read from storage per GPU write: what the loader holds on the host at a time.
const UPLOAD_CHUNK: usize = 4 << 20;

/// Largest safetensors header we accept; real ones are well under a megabyte.
const MAX_HEADER: u64 = 100 << 20;

#[derive(Clone, Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

struct Shard {
    path: PathBuf,
    data_start: u64,
    entries: HashMap<String, Entry>,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let bad = |m: String| Error::invalid(path.display().to_string(), m);
        let mut len = [0u8; 8];
        file.read_exact(&mut len)
            .map_err(|_| bad("not a safetensors file: shorter than its 8-byte header length".into()))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > MAX_HEADER || 8 + header_len > file_len {
            return Err(bad(format!("safetensors header length {header_len} does not fit the {file_len}-byte file")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
        let mut raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| bad(format!("safetensors header is not valid JSON: {e}")))?;
        raw.remove("__metadata__");
        let data_start = 8 + header_len;
        let mut entries = HashMap::with_capacity(raw.len());
        for (name, value) in raw {
            let entry: Entry = serde_json::from_value(value).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            let [begin, end] = entry.data_offsets;
            let numel = entry.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let expected = numel.and_then(|n| n.checked_mul(dtype_size(&entry.dtype).unwrap_or(0)));
            if begin > end
                || data_start + end > file_len
                || expected != Some((end - begin) as usize)
                || dtype_size(&entry.dtype).is_none()
            {
                return Err(bad(format!(
                    "tensor `{name}` ({} {:?}, bytes {begin}..{end}) does not match its header or the file is truncated",
                    entry.dtype, entry.shape
                )));
            }
            entries.insert(name, entry);
        }
        Ok(Self { path: path.to_owned(), data_start, entries })
    }

    fn read(&self, name: &str, entry: &Entry) -> Result<HostTensor> {
        let [begin, end] = entry.data_offsets;
        let mut file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.data_start + begin)).map_err(|e| Error::io(&self.path, e))?;
        let mut bytes = vec![0u8; (end - begin) as usize];
        file.read_exact(&mut bytes).map_err(|e| Error::io(&self.path, e))?;
        let data = decode(&entry.dtype, &bytes)
            .ok_or_else(|| Error::invalid(name, format!("unsupported dtype {}", entry.dtype)))?;
        Ok(HostTensor { shape: entry.shape.clone(), data })
    }
}

fn dtype_size(dtype: &str) -> Option<usize> {
    match dtype {
        "F32" => Some(4),
        "F16" | "BF16" => Some(2),
        _ => None,
    }
}

fn decode(dtype: &str, bytes: &[u8]) -> Option<Vec<f32>> {
    let pairs = || bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    Some(match dtype {
        "F32" => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        "F16" => pairs().map(|b| f16::from_bits(b).to_f32()).collect(),
        "BF16" => pairs().map(|b| bf16::from_bits(b).to_f32()).collect(),
        _ => return None,
    })
}

/// A Hugging Face checkpoint directory.
pub struct Checkpoint {
    shards: Vec<Shard>,
    /// tensor name → shard index
    index: HashMap<String, usize>,
}

#[derive(Deserialize)]
struct IndexFile {
    weight_map: HashMap<String, String>,
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Self> {
        let (shards, problems) = Self::scan(dir)?;
        match problems.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(shards),
        }
    }

    /// Open every shard the folder lists; the shards that cannot be read are left out and
    /// their errors returned beside the rest (`fusion check` reports them all at once).
    pub fn scan(dir: &Path) -> Result<(Self, Vec<Error>)> {
        let index_path = dir.join("model.safetensors.index.json");
        let files: Vec<String> = if index_path.exists() {
            let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
            let index: IndexFile = serde_json::from_str(&text)
                .map_err(|e| Error::invalid(index_path.display().to_string(), e.to_string()))?;
            let mut files: Vec<String> = index.weight_map.into_values().collect();
            files.sort();
            files.dedup();
            files
        } else if dir.join("model.safetensors").exists() {
            vec!["model.safetensors".into()]
        } else {
            return Err(Error::invalid(
                dir.display().to_string(),
                "no model.safetensors or model.safetensors.index.json: not a Hugging Face checkpoint",
            ));
        };
        let mut shards = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        let mut problems = Vec::new();
        for file in &files {
            if file.contains('/') || file.contains("..") {
                return Err(Error::invalid(
                    index_path.display().to_string(),
                    format!("shard name `{file}` leaves the checkpoint folder"),
                ));
            }
            match Shard::open(&dir.join(file)) {
                Ok(shard) => {
                    for name in shard.entries.keys() {
                        index.insert(name.clone(), shards.len());
                    }
                    shards.push(shard);
                }
                Err(e) => problems.push(e),
            }
        }
        Ok((Self { shards, index }, problems))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }
}

impl TensorSource for Checkpoint {
    fn tensor(&mut self, name: &str) -> Result<HostTensor> {
        let shard = self
            .index
            .get(name)
            .map(|&i| &self.shards[i])
            .ok_or_else(|| Error::invalid(name, "tensor missing from the checkpoint"))?;
        shard.read(name, &shard.entries[name])
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.index.get(name).map(|&i| self.shards[i].entries[name].shape.clone())
    }
}

/// Tensors held in memory (tests, generated models).
#[derive(Default)]
pub struct MemorySource(pub HashMap<String, HostTensor>);

impl TensorSource for MemorySource {
    fn tensor(&mut self, name: &str) -> Result<HostTensor> {
        self.0.get(name).cloned().ok_or_else(|| Error::invalid(name, "tensor missing"))
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.0.get(name).map(|t| t.shape.clone())
    }
}

/// Reads byte ranges of a converted model's shards: files natively, the browser's cache (OPFS)
/// through JS in wasm.
pub trait ShardReader {
    fn read(&mut self, shard: &crate::manifest::ShardEntry, offset: u64, out: &mut [u8]) -> Result<()>;
}

/// Shards as files in a directory.
pub struct ShardFiles(pub PathBuf);

impl ShardReader for ShardFiles {
    fn read(&mut self, shard: &crate::manifest::ShardEntry, offset: u64, out: &mut [u8]) -> Result<()> {
        let path = self.0.join(&shard.file);
        let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        file.seek(SeekFrom::Start(offset)).map_err(|e| Error::io(&path, e))?;
        file.read_exact(out).map_err(|e| Error::io(&path, e))
    }
}

/// The lowercase hex sha256 of everything `read` yields, and its length.
pub fn sha256_hex(mut read: impl FnMut(&mut [u8]) -> Result<usize>) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hash.finalize().iter().map(|b| format!("{b:02x}")).collect(), bytes))
}

/// A converted model (`fusion convert`): `manifest.json` plus shards.
pub struct Converted<R = ShardFiles> {
    reader: R,
    pub manifest: crate::manifest::Manifest,
    index: HashMap<String, usize>,
}

impl Converted<ShardFiles> {
    /// Open a converted model directory, checking every shard against its sha256 first.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("manifest.json");
        let manifest =
            crate::manifest::Manifest::from_json(&std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?)?;
        for shard in &manifest.shards {
            let path = dir.join(&shard.file);
            let mut file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let (digest, bytes) = sha256_hex(|buf| file.read(buf).map_err(|e| Error::io(&path, e)))?;
            if bytes != shard.bytes || digest != shard.sha256 {
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!(
                        "{bytes} bytes with sha256 {digest}; the manifest pins {} bytes with {}: the shard is corrupt or truncated",
                        shard.bytes, shard.sha256
                    ),
                ));
            }
        }
        Ok(Self::new(manifest, ShardFiles(dir.to_owned())))
    }
}

impl<R: ShardReader> Converted<R> {
    /// A converted model whose shards `reader` has already verified.
    pub fn new(manifest: crate::manifest::Manifest, reader: R) -> Self {
        let index = manifest.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Self { reader, manifest, index }
    }

    fn entry(&self, name: &str) -> Result<&crate::manifest::TensorEntry> {
        self.index
            .get(name)
            .map(|&i| &self.manifest.tensors[i])
            .ok_or_else(|| Error::invalid(name, "tensor missing from the converted model"))
    }

    fn bytes(&mut self, ranges: &[crate::manifest::Range]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ranges.iter().map(|r| r.bytes as usize).sum());
        for r in ranges {
            let start = out.len();
            out.resize(start + r.bytes as usize, 0);
            self.reader.read(&self.manifest.shards[r.shard], r.offset, &mut out[start..])?;
        }
        Ok(out)
    }

    /// Stream `ranges` into a new GPU buffer of `expected` bytes, `UPLOAD_CHUNK` at a time:
    /// each chunk is uploaded into a small buffer of its own (in a browser `writeBuffer` copies
    /// it out of wasm memory at once) and copied into place on the GPU.
    fn stream(
        &mut self,
        name: &str,
        ranges: &[crate::manifest::Range],
        expected: usize,
        gpu: &crate::Gpu,
    ) -> Result<cubecl::server::Handle> {
        let total: u64 = ranges.iter().map(|r| r.bytes).sum();
        if total != expected as u64 {
            return Err(Error::invalid(name, format!("{total} bytes stored, {expected} expected")));
        }
        // The copy moves vec4s: chunks start on 16-byte boundaries (ranges other than a
        // tensor's last are multiples of 256 bytes) and the last one is zero-padded.
        let handle = gpu.empty_bytes(expected.next_multiple_of(16));
        let mut words = vec![0u32; UPLOAD_CHUNK.min(expected.next_multiple_of(16)) / 4];
        let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
        let mut at = 0usize;
        for r in ranges {
            let mut done = 0usize;
            while done < r.bytes as usize {
                let n = UPLOAD_CHUNK.min(r.bytes as usize - done);
                if !at.is_multiple_of(16) {
                    return Err(Error::invalid(
                        name,
                        format!("a range ends mid-tensor at byte {at}, off the 256-byte grid"),
                    ));
                }
                self.reader.read(&self.manifest.shards[r.shard], r.offset + done as u64, &mut buf[..n])?;
                let padded = n.next_multiple_of(16);
                buf[n..padded].fill(0);
                let chunk = gpu.upload_u32(bytemuck::cast_slice(&buf[..padded]));
                crate::kernels::copy::copy(gpu, &chunk, &handle, padded / 4, at / 4)?;
                done += n;
                at += n;
            }
        }
        Ok(handle)
    }

    fn words(&mut self, name: &str, ranges: &[crate::manifest::Range], expected: usize) -> Result<Vec<u32>> {
        let bytes = self.bytes(ranges)?;
        if bytes.len() != expected * 4 {
            return Err(Error::invalid(name, format!("{} bytes stored, {} expected", bytes.len(), expected * 4)));
        }
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

impl<R: ShardReader> TensorSource for Converted<R> {
    fn tensor(&mut self, name: &str) -> Result<HostTensor> {
        use crate::manifest::DType;
        let entry = self.entry(name)?.clone();
        let data = match entry.dtype {
            DType::Int4 => {
                return self
                    .int4(name)?
                    .map(|q| HostTensor { shape: entry.shape.clone(), data: q.dequantize() })
                    .ok_or_else(|| Error::invalid(name, "not int4"));
            }
            DType::F32 => decode("F32", &self.bytes(&entry.data)?),
            DType::F16 => decode("F16", &self.bytes(&entry.data)?),
        }
        .ok_or_else(|| Error::invalid(name, "undecodable"))?;
        if data.len() != entry.shape.iter().product::<usize>() {
            return Err(Error::invalid(name, format!("{} values stored for shape {:?}", data.len(), entry.shape)));
        }
        Ok(HostTensor { shape: entry.shape, data })
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.entry(name).ok().map(|e| e.shape.clone())
    }

    fn upload(&mut self, name: &str, dtype: crate::manifest::DType, gpu: &crate::Gpu) -> Result<Option<GpuTensor>> {
        use crate::manifest::DType;
        use crate::quant::Int4Weight;
        let entry = self.entry(name)?.clone();
        if entry.dtype != dtype {
            return Ok(None);
        }
        let n: usize = entry.shape.iter().product();
        let (data, scales) = match (dtype, entry.group, &entry.scales, entry.shape.as_slice()) {
            (DType::F16, ..) => (self.stream(name, &entry.data, n * 2, gpu)?, None),
            (DType::Int4, Some(group), Some(scales), &[rows, cols]) if crate::quant::valid_group(group) => {
                let packed = self.stream(name, &entry.data, rows * Int4Weight::words_per_row(cols, group) * 4, gpu)?;
                let scales =
                    self.stream(name, scales, (rows * Int4Weight::groups_per_row(cols, group)).div_ceil(2) * 4, gpu)?;
                (packed, Some(scales))
            }
            _ => {
                return Err(Error::invalid(
                    name,
                    format!(
                        "a {:?} tensor of shape {:?} with group {:?} cannot be uploaded",
                        entry.dtype, entry.shape, entry.group
                    ),
                ));
            }
        };
        Ok(Some(GpuTensor { shape: entry.shape, group: entry.group, data, scales }))
    }

    fn int4(&mut self, name: &str) -> Result<Option<crate::quant::Int4Weight>> {
        let entry = self.entry(name)?.clone();
        let (Some(scales), Some(group), &[rows, cols]) = (&entry.scales, entry.group, entry.shape.as_slice()) else {
            return Ok(None);
        };
        if !crate::quant::valid_group(group) {
            return Err(Error::invalid(
                name,
                format!("int4 group size {group} is not a positive multiple of {}", crate::quant::NIBBLES_PER_LOAD),
            ));
        }
        let packed = self.words(name, &entry.data, rows * crate::quant::Int4Weight::words_per_row(cols, group))?;
        let n_scales = rows * crate::quant::Int4Weight::groups_per_row(cols, group);
        let words = self.words(name, scales, n_scales.div_ceil(2))?;
        let scales = (0..n_scales).map(|i| half::f16::from_bits((words[i / 2] >> (16 * (i % 2))) as u16)).collect();
        Ok(Some(crate::quant::Int4Weight { rows, cols, group, packed, scales }))
    }
}

#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::*;
    use crate::manifest::{DType, FORMAT, FORMAT_VERSION, Manifest};

    /// A tensor bigger than one upload chunk, split across shards, with an odd f16 count:
    /// streamed to the GPU it reads back byte for byte.
    #[test]
    fn tensors_stream_to_the_gpu_across_chunks_and_shards() {
        let dir = std::env::temp_dir().join(format!("fusion-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = (UPLOAD_CHUNK + UPLOAD_CHUNK / 3) / 2 * 2 + 1; // f16 values: > 1 chunk of bytes, odd
        let values: Vec<u16> = (0..n).map(|i| ((i * 2_654_435_761usize) >> 7) as u16).collect();
        let mut shards = crate::convert::Shards::new(&dir, 3 << 20);
        let lead =
            shards.tensor("lead".into(), vec![3], DType::F16, bytemuck::cast_slice(&[1u16, 2, 3]), None).unwrap();
        let entry = shards.tensor("big".into(), vec![n], DType::F16, bytemuck::cast_slice(&values), None).unwrap();
        assert!(entry.data.len() > 1, "the tensor spans shards");
        let manifest = Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            config: serde_json::json!({}),
            vision_config: None,
            generation_config: None,
            tokenizer: None,
            shards: shards.finish().unwrap(),
            tensors: vec![lead, entry],
        };
        let gpu = crate::Gpu::new().unwrap();
        let mut model = Converted::new(manifest, ShardFiles(dir.clone()));
        assert!(model.upload("big", DType::Int4, &gpu).unwrap().is_none(), "stored as f16, not int4");
        let t = model.upload("big", DType::F16, &gpu).unwrap().unwrap();
        let words = (n * 2).next_multiple_of(16) / 4;
        let got: Vec<u32> = pollster::block_on(crate::gpu::read_f32(gpu.tensor_of(t.data, [words])))
            .unwrap()
            .iter()
            .map(|f| f.to_bits())
            .collect();
        let got: &[u16] = bytemuck::cast_slice(&got);
        assert!(got[..n] == values[..], "streamed bytes differ");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
