//! What a model folder is, and everything wrong with it, found without a GPU and without
//! reading the weights: `fusion check`, and the first step of `fusion convert`, which writes
//! nothing when a problem is found.
//!
//! A checkpoint (the published layout: `config.json`, safetensors shards, the tokenizer files)
//! is checked against [`weights::layout`]: every tensor the model reads present with its shape,
//! every shard readable and whole, the tokenizer buildable and within the vocabulary. A
//! converted folder (`manifest.json`) is checked the same way from its manifest, with its
//! shards' sizes (their sha256 is checked when the model loads).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::config::{Backbone, FusionConfig, TowerKind, VisionConfig};
use crate::convert::storage;
use crate::error::Error;
use crate::loader::{Checkpoint, TensorSource};
use crate::manifest::{DType, Manifest};
use crate::quant::Int4Weight;
use crate::tokenizer::Tokenizer;
use crate::weights::{self, Dims, TowerShape};

/// The int4 group size `fusion convert` writes by default.
pub const GROUP: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Folder {
    /// A Hugging Face checkpoint, as published.
    Checkpoint,
    /// What `fusion convert` wrote.
    Converted,
}

/// What [`check`] found.
#[derive(Debug)]
pub struct Report {
    pub folder: Folder,
    /// Decoder, tower and shapes, when the config could be read.
    pub config: Option<FusionConfig>,
    pub dims: Option<Dims>,
    /// Parameters of the tensors the model reads.
    pub parameters: u64,
    /// Bytes of the converted shards (int4 linear weights with f16 scales, f16 embeddings,
    /// f32 vectors): what a browser downloads and caches.
    pub int4_bytes: u64,
    /// Every problem found, each naming the file or tensor; empty: the folder is usable.
    pub problems: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The published model these shapes are, or a description of them.
    pub fn variant(&self) -> String {
        let Some(config) = &self.config else { return "unknown (no readable config.json)".into() };
        let x = config.tower_kind() == TowerKind::Siglip2;
        let name = match (config.model_type, x) {
            (Backbone::Phi, false) => "FUSION-Phi3.5-3B",
            (Backbone::Phi, true) => "FUSION-X-Phi3.5-3B",
            (Backbone::Llama, false) => "FUSION-LLaMA3.1-8B",
            (Backbone::Llama, true) => "FUSION-X-LLaMA3.1-8B",
        };
        let real = match config.model_type {
            Backbone::Phi => config.hidden_size == 3072,
            Backbone::Llama => config.hidden_size == 4096,
        };
        if real {
            name.to_owned()
        } else {
            format!("{name} layout at other widths (hidden size {})", config.hidden_size)
        }
    }

    /// GPU memory to answer at `context` positions: the weights as converted, and the KV cache
    /// (f32 keys and values for every layer, its buffers doubling from 256 positions). The
    /// working buffers of one step (activations, logits) come on top: a few hundred MB at the
    /// published shapes (BENCHMARKS.md).
    pub fn gpu_bytes(&self, context: usize) -> Option<u64> {
        let d = self.dims?;
        let capacity = context.max(1).next_power_of_two().max(256) as u64;
        let kv = d.layers as u64 * 2 * d.kv_heads as u64 * d.head_dim as u64 * capacity * 4;
        Some(self.int4_bytes + kv)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let gb = |b: u64| b as f64 / 1e9;
        let what = match self.folder {
            Folder::Checkpoint => "checkpoint",
            Folder::Converted => "converted model",
        };
        writeln!(f, "{what}: {}", self.variant())?;
        if let Some(c) = &self.config {
            let tower = match c.tower_kind() {
                TowerKind::Siglip => "SigLIP so400m/14",
                TowerKind::Siglip2 => "SigLIP2 giant/16",
            };
            writeln!(
                f,
                "decoder: {:?}, {} layers, hidden {}; tower: {tower} ({})",
                c.model_type, c.num_hidden_layers, c.hidden_size, c.mm_vision_tower
            )?;
            writeln!(
                f,
                "parameters: {:.2} B; int4 (group {GROUP}): {:.2} GB",
                self.parameters as f64 / 1e9,
                gb(self.int4_bytes)
            )?;
            let context = c.max_context();
            if let Some(bytes) = self.gpu_bytes(context) {
                writeln!(f, "GPU memory at its {context}-position context: {:.2} GB + working buffers", gb(bytes))?;
            }
        }
        if self.ok() {
            writeln!(f, "no problems found")
        } else {
            writeln!(f, "{} problem(s):", self.problems.len())?;
            self.problems.iter().try_for_each(|p| writeln!(f, "  - {p}"))
        }
    }
}

/// Check the model folder `dir` (a checkpoint, or a converted model).
pub fn check(dir: &Path) -> Report {
    let converted = dir.join("manifest.json").exists();
    let mut report = Report {
        folder: if converted { Folder::Converted } else { Folder::Checkpoint },
        config: None,
        dims: None,
        parameters: 0,
        int4_bytes: 0,
        problems: Vec::new(),
    };
    let found = if converted { converted_shapes(dir, &mut report) } else { checkpoint_shapes(dir, &mut report) };
    let Some((config, shapes)) = found else { return report };
    match TowerShape::from_shapes(|name| shapes.get(name).cloned()) {
        Ok(tower) => {
            let dims = Dims::new(&config, tower);
            tensors(&config, &dims, &shapes, &mut report);
            report.dims = Some(dims);
        }
        Err(e) => report.problems.push(e.to_string()),
    }
    report.config = Some(config);
    report
}

/// The checkpoint's config, tokenizer and tensor shapes; every problem noted.
fn checkpoint_shapes(dir: &Path, report: &mut Report) -> Option<(FusionConfig, HashMap<String, Vec<usize>>)> {
    let config = match FusionConfig::load(dir) {
        Ok(c) => c,
        Err(e) => {
            report.problems.push(e.to_string());
            return None;
        }
    };
    if let Err(e) = VisionConfig::load(dir, &config) {
        report.problems.push(e.to_string());
    }
    tokenizer(Tokenizer::load(dir, config.model_type), &config, report);
    let shapes = match Checkpoint::scan(dir) {
        Ok((checkpoint, problems)) => {
            report.problems.extend(problems.iter().map(Error::to_string));
            checkpoint.names().filter_map(|n| Some((n.to_owned(), checkpoint.shape(n)?))).collect()
        }
        Err(e) => {
            report.problems.push(e.to_string());
            HashMap::new()
        }
    };
    Some((config, shapes))
}

/// The converted model's config, tokenizer and tensor shapes, and its shards' sizes.
fn converted_shapes(dir: &Path, report: &mut Report) -> Option<(FusionConfig, HashMap<String, Vec<usize>>)> {
    let manifest = std::fs::read_to_string(dir.join("manifest.json"))
        .map_err(|e| Error::io(dir.join("manifest.json"), e))
        .and_then(|text| Manifest::from_json(&text));
    let manifest = match manifest {
        Ok(m) => m,
        Err(e) => {
            report.problems.push(e.to_string());
            return None;
        }
    };
    let config = match FusionConfig::from_json(&manifest.config.to_string()) {
        Ok(c) => c,
        Err(e) => {
            report.problems.push(format!("manifest.json: {e}"));
            return None;
        }
    };
    let name = manifest.tokenizer.as_deref().unwrap_or(crate::tokenizer::TOKENIZER_FILE);
    let path = dir.join(name);
    let built = std::fs::read(&path)
        .map_err(|e| Error::io(&path, e))
        .and_then(|b| Tokenizer::from_bytes(&b, config.model_type));
    tokenizer(built, &config, report);
    for shard in &manifest.shards {
        let path = dir.join(&shard.file);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == shard.bytes => {}
            Ok(m) => report.problems.push(format!(
                "{}: {} bytes, the manifest pins {}: the shard is truncated or not this model's",
                path.display(),
                m.len(),
                shard.bytes
            )),
            Err(e) => report.problems.push(Error::io(&path, e).to_string()),
        }
    }
    let shapes = manifest.tensors.iter().map(|t| (t.name.clone(), t.shape.clone())).collect();
    Some((config, shapes))
}

/// The tokenizer builds, places both vision markers, and names no id past the vocabulary.
fn tokenizer(built: crate::Result<Tokenizer>, config: &FusionConfig, report: &mut Report) {
    let t = match built {
        Ok(t) => t,
        Err(e) => return report.problems.push(format!("tokenizer: {e}")),
    };
    for marker in ["<vision_start>", "<vision_end>"] {
        match t.token_id(marker) {
            None => {
                report.problems.push(format!("tokenizer: no {marker} token (the reference adds it to the tokenizer)"))
            }
            Some(id) if id as usize >= config.vocab_size => report
                .problems
                .push(format!("tokenizer: {marker} is id {id}, past the model's vocabulary of {}", config.vocab_size)),
            Some(_) => {}
        }
    }
}

/// Every tensor the model reads, present with its shape; the sizes it converts to.
fn tensors(config: &FusionConfig, dims: &Dims, shapes: &HashMap<String, Vec<usize>>, report: &mut Report) {
    if dims.tower.width != config.mm_hidden_size {
        report.problems.push(format!(
            "config.json: mm_hidden_size {} but the tower is {} wide",
            config.mm_hidden_size, dims.tower.width
        ));
    }
    if let Some(bad) = config.interaction_after().into_iter().find(|&l| l >= config.num_hidden_layers) {
        report.problems.push(format!(
            "config.json: an interaction layer follows decoder layer {bad}, but there are {}",
            config.num_hidden_layers
        ));
    }
    let (mut missing, mut wrong) = (Vec::new(), Vec::new());
    for spec in weights::layout(dims).into_iter().filter(|t| t.used) {
        match shapes.get(&spec.name) {
            None => missing.push(spec.name),
            Some(shape) if *shape != spec.shape => {
                wrong.push(format!("{}: shape {shape:?}, expected {:?}", spec.name, spec.shape))
            }
            Some(_) => {
                let n: u64 = spec.shape.iter().map(|&d| d as u64).product();
                report.parameters += n;
                report.int4_bytes += match storage(&spec.name, &spec.shape) {
                    DType::Int4 => {
                        let (rows, cols) = (spec.shape[0], spec.shape[1]);
                        let scales = rows * Int4Weight::groups_per_row(cols, GROUP);
                        (rows * Int4Weight::words_per_row(cols, GROUP) * 4 + scales.div_ceil(2) * 4) as u64
                    }
                    DType::F16 => 2 * n,
                    DType::F32 => 4 * n,
                };
            }
        }
    }
    // A whole missing part is one line, not hundreds.
    const SHOWN: usize = 8;
    if !missing.is_empty() {
        let more = missing.len().saturating_sub(SHOWN);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        report.problems.push(format!(
            "{} tensor(s) missing: {}{tail}",
            missing.len(),
            missing[..missing.len().min(SHOWN)].join(", ")
        ));
    }
    report.problems.extend(wrong);
}
