//! The converted-model format: int4 and f16/f32 tensors packed into shards of at most 256 MB,
//! described by `manifest.json` (every tensor's shard, offset, dtype and shape; sha256 per
//! shard). The browser streams each shard straight into GPU buffers, so every byte range is
//! 256-byte aligned (WebGPU's storage-binding offset alignment) and a whole number of `u32`s.

use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "fusion-int4";
pub const FORMAT_VERSION: u32 = 1;
/// Largest shard: what one `fetch` + GPU buffer comfortably holds in a browser.
pub const MAX_SHARD_BYTES: u64 = 256 << 20;
/// Every range starts on this boundary.
pub const ALIGN: u64 = 256;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Range {
    pub shard: usize,
    pub offset: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    /// Group-wise symmetric int4 (`quant.rs`): `data` holds the packed words, `scales` the f16 scales.
    Int4,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    /// PyTorch shape (`[out, in]` for linear weights).
    pub shape: Vec<usize>,
    /// The tensor's bytes, in order; a tensor larger than a shard continues in the next one.
    pub data: Vec<Range>,
    /// int4 only
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scales: Option<Vec<Range>>,
    /// int4 only
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The checkpoint's `config.json`, verbatim.
    pub config: serde_json::Value,
    /// The vision tower's `config.json`, when the checkpoint has one.
    #[serde(default)]
    pub vision_config: Option<serde_json::Value>,
    #[serde(default)]
    pub generation_config: Option<serde_json::Value>,
    /// The tokenizer file next to the manifest (`tokenizer.json`, or the slow tokenizer's
    /// `tokenizer.slow.json`).
    #[serde(default)]
    pub tokenizer: Option<String>,
    pub shards: Vec<ShardEntry>,
    pub tensors: Vec<TensorEntry>,
}

impl Manifest {
    /// Parse and check a manifest: format, version, and every range inside its shard.
    pub fn from_json(text: &str) -> crate::Result<Self> {
        let bad = |m: String| crate::Error::invalid("manifest.json", m);
        let m: Manifest = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if m.format != FORMAT || m.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format {} v{}; this engine reads {FORMAT} v{FORMAT_VERSION}",
                m.format, m.version
            )));
        }
        // Every file is fetched relative to the manifest: a name that is a path or a URL could
        // pull bytes from elsewhere (another folder, another origin).
        let local = |name: &str| !name.is_empty() && !name.contains(['/', '\\', ':']) && !name.contains("..");
        for shard in &m.shards {
            if !local(&shard.file) {
                return Err(bad(format!("shard name `{}` leaves the model folder", shard.file)));
            }
        }
        if let Some(name) = m.tokenizer.as_deref().filter(|n| !local(n)) {
            return Err(bad(format!("tokenizer name `{name}` leaves the model folder")));
        }
        for t in &m.tensors {
            for r in t.data.iter().chain(t.scales.iter().flatten()) {
                let shard = m
                    .shards
                    .get(r.shard)
                    .ok_or_else(|| bad(format!("tensor `{}` names shard {} of {}", t.name, r.shard, m.shards.len())))?;
                if r.offset.checked_add(r.bytes).is_none_or(|end| end > shard.bytes) || r.offset % ALIGN != 0 {
                    return Err(bad(format!(
                        "tensor `{}` range {}+{} is outside or misaligned in {}",
                        t.name, r.offset, r.bytes, shard.file
                    )));
                }
            }
            if (t.dtype == DType::Int4) != (t.scales.is_some() && t.group.is_some()) {
                return Err(bad(format!(
                    "tensor `{}`: int4 tensors (and only they) carry scales and a group size",
                    t.name
                )));
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(shard: &str, tokenizer: &str) -> String {
        serde_json::json!({
            "format": FORMAT, "version": FORMAT_VERSION, "config": {}, "tokenizer": tokenizer,
            "shards": [{"file": shard, "bytes": 512, "sha256": "00"}],
            "tensors": [{"name": "w", "dtype": "f32", "shape": [128], "data": [{"shard": 0, "offset": 256, "bytes": 256}]}],
        })
        .to_string()
    }

    #[test]
    fn file_names_stay_in_the_model_folder() {
        assert!(Manifest::from_json(&manifest("shard-00000.bin", "tokenizer.json")).is_ok());
        for (shard, tokenizer) in [
            ("../shard.bin", "tokenizer.json"),
            ("https://elsewhere.example/shard.bin", "tokenizer.json"),
            ("sub/shard.bin", "tokenizer.json"),
            ("C:shard.bin", "tokenizer.json"),
            ("", "tokenizer.json"),
            ("shard-00000.bin", "//elsewhere.example/tokenizer.json"),
            ("shard-00000.bin", ".."),
        ] {
            let e = Manifest::from_json(&manifest(shard, tokenizer)).expect_err(shard).to_string();
            assert!(e.contains("leaves the model folder"), "{shard} {tokenizer}: {e}");
        }
    }
}
