//! `fusion convert`: a Hugging Face checkpoint → int4 shards + `manifest.json` (`manifest.rs`).
//! One tensor is in memory at a time (as f32), shards are hashed as they are written: the 3B
//! converts at 0.6 GB of peak RSS, the 8B at 3 GB, its 128k-row embedding and lm_head being the
//! largest tensors (BENCHMARKS.md).
//!
//! What is quantised: every 2-D linear weight (decoder, projectors, interaction layers, vision
//! tower, lm_head). Token embeddings (a lookup), the patch and position embeddings stay f16;
//! norms and biases (1-D, tiny) stay f32.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::loader::{Checkpoint, TensorSource};
use crate::manifest::{
    ALIGN, DType, FORMAT, FORMAT_VERSION, MAX_SHARD_BYTES, Manifest, Range, ShardEntry, TensorEntry,
};
use crate::quant::Int4Weight;
use crate::tokenizer::{TOKENIZER_FILE, Tokenizer};
use crate::weights;

pub struct ConvertOptions {
    pub group: usize,
    pub max_shard_bytes: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self { group: 32, max_shard_bytes: MAX_SHARD_BYTES }
    }
}

pub(crate) fn storage(name: &str, shape: &[usize]) -> DType {
    let embedding = name == weights::embed_tokens() || name == weights::position_embedding();
    match shape.len() {
        2 if !embedding => DType::Int4,
        1 => DType::F32,
        _ => DType::F16,
    }
}

pub(crate) struct Shards<'a> {
    dir: &'a Path,
    max: u64,
    done: Vec<ShardEntry>,
    open: Option<(BufWriter<File>, Sha256, u64)>,
}

impl<'a> Shards<'a> {
    pub(crate) fn new(dir: &'a Path, max: u64) -> Self {
        Self { dir, max: max.max(ALIGN), done: Vec::new(), open: None }
    }

    /// Close the last shard; the list of shards written.
    pub(crate) fn finish(mut self) -> Result<Vec<ShardEntry>> {
        self.close()?;
        Ok(self.done)
    }

    /// Append one tensor's stored bytes (for int4 also its scales and group size) and describe it.
    pub(crate) fn tensor(
        &mut self,
        name: String,
        shape: Vec<usize>,
        dtype: DType,
        data: &[u8],
        int4: Option<(&[u8], usize)>,
    ) -> Result<TensorEntry> {
        let data = self.write(data)?;
        let (scales, group) = match int4 {
            Some((scales, group)) => (Some(self.write(scales)?), Some(group)),
            None => (None, None),
        };
        Ok(TensorEntry { name, dtype, shape, data, scales, group })
    }

    fn file_name(i: usize) -> String {
        format!("shard-{i:05}.bin")
    }

    fn close(&mut self) -> Result<()> {
        if let Some((mut w, hash, bytes)) = self.open.take() {
            let file = Self::file_name(self.done.len());
            w.flush().map_err(|e| Error::io(self.dir.join(&file), e))?;
            let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
            self.done.push(ShardEntry { file, bytes, sha256 });
        }
        Ok(())
    }

    fn put(&mut self, chunk: &[u8]) -> Result<()> {
        let (w, hash, bytes) = self.open.as_mut().expect("a shard is open");
        w.write_all(chunk).map_err(|e| Error::io(self.dir, e))?;
        hash.update(chunk);
        *bytes += chunk.len() as u64;
        Ok(())
    }

    /// Append `data` at the next aligned offset, continuing into new shards as they fill.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<Vec<Range>> {
        let mut ranges = Vec::new();
        loop {
            if let Some((_, _, bytes)) = &self.open {
                let pad = bytes.next_multiple_of(ALIGN) - bytes;
                if bytes + pad >= self.max {
                    self.close()?;
                } else {
                    self.put(&vec![0u8; pad as usize])?;
                }
            }
            if self.open.is_none() {
                let path = self.dir.join(Self::file_name(self.done.len()));
                let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
                self.open = Some((BufWriter::with_capacity(1 << 20, file), Sha256::new(), 0));
            }
            let offset = self.open.as_ref().map_or(0, |o| o.2);
            let room = (self.max - offset) as usize;
            let (now, rest) = data.split_at(data.len().min(room));
            self.put(now)?;
            ranges.push(Range { shard: self.done.len(), offset, bytes: now.len() as u64 });
            data = rest;
            if data.is_empty() {
                return Ok(ranges);
            }
        }
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            serde_json::from_str(&t).map(Some).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Convert `src` (a Hugging Face FUSION checkpoint) into `out`.
pub fn convert(src: &Path, out: &Path, options: &ConvertOptions) -> Result<Manifest> {
    convert_with_progress(src, out, options, &mut |_| {})
}

/// How far a conversion is: the tensor just written, and the weights (values) converted so
/// far and in all.
pub struct Progress<'a> {
    pub tensor: &'a str,
    pub done: u64,
    pub total: u64,
}

/// [`convert`], calling `progress` after each tensor. The whole checkpoint is checked first
/// ([`crate::check`]: config, every tensor and shape, the shards whole, the tokenizer, the room
/// on the output's disk); any problem fails the conversion before anything is written, with
/// every problem named.
pub fn convert_with_progress(
    src: &Path,
    out: &Path,
    options: &ConvertOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Manifest> {
    let report = crate::check::check(src);
    if report.folder == crate::check::Folder::Converted {
        return Err(Error::invalid(
            src.display().to_string(),
            "this is a converted model already (it has manifest.json)",
        ));
    }
    if !report.ok() {
        return Err(Error::invalid(
            src.display().to_string(),
            format!("not converted, nothing written:\n  - {}", report.problems.join("\n  - ")),
        ));
    }
    check_room(out, report.int4_bytes)?;
    let config_text =
        std::fs::read_to_string(src.join("config.json")).map_err(|e| Error::io(src.join("config.json"), e))?;
    let fusion = crate::config::FusionConfig::from_json(&config_text)?;
    let tokenizer = Tokenizer::load(src, fusion.model_type)?;
    let tokenizer_bytes = match tokenizer.file_name() {
        TOKENIZER_FILE => {
            std::fs::read(src.join(TOKENIZER_FILE)).map_err(|e| Error::io(src.join(TOKENIZER_FILE), e))?
        }
        _ => tokenizer.to_bytes()?,
    };
    let mut checkpoint = Checkpoint::open(src)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut names: Vec<String> = checkpoint.names().map(str::to_owned).collect();
    names.sort();
    let numel = |shape: &[usize]| shape.iter().map(|&d| d as u64).product::<u64>();
    let total = names.iter().filter_map(|n| checkpoint.shape(n)).map(|s| numel(&s)).sum();
    let mut done = 0;

    let mut shards = Shards::new(out, options.max_shard_bytes);
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = checkpoint.tensor(&name)?;
        let dtype = storage(&name, &t.shape);
        let entry = match dtype {
            DType::Int4 => {
                let q = Int4Weight::quantize(&name, &t.data, t.shape[0], t.shape[1], options.group)?;
                let scales = q.scales_u32();
                shards.tensor(
                    name,
                    t.shape,
                    dtype,
                    bytemuck::cast_slice(&q.packed),
                    Some((bytemuck::cast_slice(&scales), options.group)),
                )?
            }
            DType::F16 => {
                let halves: Vec<u16> = t.data.iter().map(|v| f16::from_f32(*v).to_bits()).collect();
                shards.tensor(name, t.shape, dtype, bytemuck::cast_slice(&halves), None)?
            }
            DType::F32 => shards.tensor(name, t.shape, dtype, bytemuck::cast_slice(&t.data), None)?,
        };
        done += numel(&entry.shape);
        progress(Progress { tensor: &entry.name, done, total });
        tensors.push(entry);
    }
    let shards = shards.finish()?;

    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        config: serde_json::from_str(&config_text).map_err(|e| Error::invalid("config.json", e.to_string()))?,
        vision_config: read_json(&src.join(&fusion.mm_vision_tower).join("config.json"))?,
        generation_config: read_json(&src.join("generation_config.json"))?,
        tokenizer: Some(tokenizer.file_name().into()),
        shards,
        tensors,
    };
    let tokenizer_path = out.join(tokenizer.file_name());
    std::fs::write(&tokenizer_path, tokenizer_bytes).map_err(|e| Error::io(&tokenizer_path, e))?;
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| Error::invalid("manifest.json", e.to_string()))?;
    std::fs::write(out.join("manifest.json"), text).map_err(|e| Error::io(out.join("manifest.json"), e))?;
    Ok(manifest)
}

/// Refuse to start a conversion that would fill the output's disk (`needed` bytes, with 1 %
/// to spare); where the free space cannot be read, convert anyway.
fn check_room(out: &Path, needed: u64) -> Result<()> {
    #[cfg(unix)]
    {
        // The output folder may not exist yet: ask about the nearest one that does.
        let existing = out.ancestors().find(|p| p.exists()).unwrap_or(Path::new("."));
        if let Ok(stat) = rustix::fs::statvfs(existing) {
            let free = stat.f_bavail.saturating_mul(stat.f_frsize);
            let needed = needed + needed / 100;
            if free < needed {
                return Err(Error::invalid(
                    out.display().to_string(),
                    format!("the converted model needs {needed} bytes; the disk has {free} free (nothing written)"),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (out, needed);
    Ok(())
}
