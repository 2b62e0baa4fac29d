//! Phi-3.5's tokenizer as the reference runs it: transformers' slow `LlamaTokenizer`
//! (`use_fast=False` in `fusion/train/train.py` and `fusion/model/builder.py`), from the files a
//! slow tokenizer saves (`tokenizer.model`, `tokenizer_config.json`, `special_tokens_map.json`,
//! `added_tokens.json`), in transformers 4.48.1 (the version the reference pins).
//!
//! Its ids differ from a converted fast tokenizer's exactly where this code follows the slow
//! one (checked against ids made by transformers itself, `tests/fixtures/tokenizers`):
//! - the text is split at every added token, longest first; a token with `rstrip` eats the
//!   whitespace after it, one with `lstrip` the whitespace before it (Python's `str.isspace`);
//! - not `legacy`: `▁` in the text is a space, and one `▁` goes before the whole text, so a
//!   text that starts with an added token starts with a lone `▁` token, dropped only when that
//!   token is one of the "special tokens" (BOS, EOS, UNK, PAD, `additional_special_tokens`):
//!   `<|system|>…` keeps it, `<vision_end>…` does not. Every other piece is encoded with no `▁`
//!   of its own;
//! - `legacy`: every piece is encoded with the model's own dummy prefix;
//! - BOS/EOS are added as `add_bos_token`/`add_eos_token` say (Phi-3.5: neither).
//!
//! The whole tokenizer is also one JSON file ([`SlowTokenizer::to_json`]) that `fusion convert`
//! writes beside the shards, for the browser.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sentencepiece::{PieceKind, SentencePiece};
use crate::error::{Error, Result};

/// The JSON file's `format`.
pub const FORMAT: &str = "fusion-slow-llama-tokenizer";
const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddedToken {
    pub id: u32,
    pub content: String,
    pub lstrip: bool,
    pub rstrip: bool,
    pub special: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlowTokenizer {
    format: String,
    version: u32,
    model: SentencePiece,
    added: Vec<AddedToken>,
    /// `all_special_tokens`: the named special tokens and `additional_special_tokens`.
    special: Vec<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    legacy: bool,
    add_prefix_space: bool,
    unk: String,
}

impl SlowTokenizer {
    /// Whether `dir` holds a slow SentencePiece tokenizer that the reference would load
    /// (`AutoTokenizer.from_pretrained(dir, use_fast=False)`): `tokenizer.model` and a
    /// `tokenizer_config.json` naming `LlamaTokenizer`.
    pub fn present(dir: &Path) -> Result<bool> {
        if !dir.join("tokenizer.model").is_file() {
            return Ok(false);
        }
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        Ok(matches!(config["tokenizer_class"].as_str(), Some("LlamaTokenizer" | "LlamaTokenizerFast")))
    }

    /// Read the files a slow tokenizer's `save_pretrained` writes.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.model");
        let model = SentencePiece::from_proto(&std::fs::read(&path).map_err(|e| Error::io(&path, e))?)?;
        let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let map = read_json(&dir.join("special_tokens_map.json"))?.unwrap_or(Value::Null);
        let legacy_added = read_json(&dir.join("added_tokens.json"))?.unwrap_or(Value::Null);
        Self::from_parts(model, &config, &map, &legacy_added)
    }

    /// The tokenizer from its parts; `special_tokens_map.json`'s values win over
    /// `tokenizer_config.json`'s, as in `from_pretrained`.
    pub fn from_parts(model: SentencePiece, config: &Value, map: &Value, legacy_added: &Value) -> Result<Self> {
        let bad = |m: String| Error::invalid("tokenizer_config.json", m);
        let mut added: Vec<AddedToken> = Vec::new();
        if let Some(decoder) = config["added_tokens_decoder"].as_object() {
            for (id, t) in decoder {
                let id = id.parse().map_err(|_| bad(format!("added token id `{id}`")))?;
                let content = t["content"].as_str().ok_or_else(|| bad(format!("added token {id} has no content")))?;
                let flag = |k: &str| t[k].as_bool().unwrap_or(false);
                added.push(AddedToken {
                    id,
                    content: content.to_owned(),
                    lstrip: flag("lstrip"),
                    rstrip: flag("rstrip"),
                    special: flag("special"),
                });
            }
        }
        // Older checkpoints list added tokens only in added_tokens.json.
        for (content, id) in legacy_added.as_object().into_iter().flatten() {
            let id = id.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| bad(format!("id of {content}")))?;
            if !added.iter().any(|t| t.id == id) {
                added.push(AddedToken { id, content: content.clone(), lstrip: false, rstrip: false, special: false });
            }
        }
        added.sort_by_key(|t| t.id);
        let token = |key: &str| -> Option<String> {
            let v = if map[key].is_null() { &config[key] } else { &map[key] };
            v.as_str().or_else(|| v["content"].as_str()).map(str::to_owned)
        };
        let mut special: Vec<String> =
            ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"]
                .iter()
                .filter_map(|k| token(k))
                .collect();
        let extra = if map["additional_special_tokens"].is_null() { config } else { map };
        for t in extra["additional_special_tokens"].as_array().into_iter().flatten() {
            special.extend(t.as_str().or_else(|| t["content"].as_str()).map(str::to_owned));
        }
        let mut tokenizer = Self {
            format: FORMAT.into(),
            version: VERSION,
            added,
            special,
            bos: None,
            eos: None,
            // LlamaTokenizer's defaults.
            add_bos: config["add_bos_token"].as_bool().unwrap_or(true),
            add_eos: config["add_eos_token"].as_bool().unwrap_or(false),
            legacy: config["legacy"].as_bool().unwrap_or(true),
            add_prefix_space: config["add_prefix_space"].as_bool().unwrap_or(true),
            unk: token("unk_token").unwrap_or_else(|| "<unk>".into()),
            model,
        };
        tokenizer.bos = token("bos_token").and_then(|t| tokenizer.token_id(&t));
        tokenizer.eos = token("eos_token").and_then(|t| tokenizer.token_id(&t));
        if tokenizer.add_bos && tokenizer.bos.is_none() {
            return Err(bad("add_bos_token is set but the BOS token is not in the vocabulary".into()));
        }
        Ok(tokenizer)
    }

    pub fn from_json(json: &[u8]) -> Result<Self> {
        let mut t: Self = serde_json::from_slice(json).map_err(|e| Error::invalid("tokenizer", e.to_string()))?;
        if t.format != FORMAT || t.version != VERSION {
            return Err(Error::invalid(
                "tokenizer",
                format!("format {} v{} is not {FORMAT} v{VERSION}", t.format, t.version),
            ));
        }
        t.model.index()?;
        Ok(t)
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::invalid("tokenizer", e.to_string()))
    }

    /// `tokenizer(text).input_ids` (`add_special_tokens`) or `tokenizer(text,
    /// add_special_tokens=False).input_ids`: the text as a whole text.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Vec<u32> {
        let mut ids = Vec::new();
        if add_special_tokens && self.add_bos {
            ids.extend(self.bos);
        }
        if self.legacy || text.is_empty() {
            ids.extend(self.tokenize(text));
        } else {
            let text = format!("{}{}", if self.add_prefix_space { "▁" } else { "" }, text.replace('▁', " "));
            let tokens = self.tokenize(&text);
            let lone = self.model.id("▁");
            let drop = tokens.len() > 1
                && Some(tokens[0]) == lone
                && self.added.iter().find(|t| t.id == tokens[1]).is_some_and(|t| self.special.contains(&t.content));
            ids.extend(&tokens[usize::from(drop)..]);
        }
        if add_special_tokens && self.add_eos {
            ids.extend(self.eos);
        }
        ids
    }

    /// The ids of text that continues a conversation right after an added token (an answer
    /// after `<|assistant|>`, a follow-up from `<|end|>` on), as they are in the whole
    /// conversation's ids: no BOS, and no `▁` before the text, which is not the text's start.
    pub fn continuation(&self, text: &str) -> Vec<u32> {
        if self.legacy { self.tokenize(text) } else { self.tokenize(&text.replace('▁', " ")) }
    }

    /// `PreTrainedTokenizer.tokenize` and `_tokenize`: the text split at added tokens, their
    /// strips applied, each other piece encoded.
    fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut pieces = self.split(text);
        for i in 0..pieces.len() {
            let Piece::Added(t) = pieces[i] else { continue };
            if t.rstrip
                && let Some(Piece::Text(next)) = pieces.get_mut(i + 1)
            {
                *next = next.trim_start_matches(is_python_space);
            }
            if t.lstrip
                && let Some(Piece::Text(prev)) = i.checked_sub(1).and_then(|j| pieces.get_mut(j))
            {
                *prev = prev.trim_end_matches(is_python_space);
            }
        }
        let mut ids = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Added(t) => ids.push(t.id),
                Piece::Text(s) => ids.extend(self.piece_ids(s)),
            }
        }
        ids
    }

    /// `LlamaTokenizer._tokenize` of one piece between added tokens.
    fn piece_ids(&self, s: &str) -> Vec<u32> {
        if self.legacy {
            return self.model.encode(s, self.model.add_dummy_prefix);
        }
        if !s.starts_with(['▁', ' ']) {
            return self.model.encode(s, false);
        }
        // The library encodes `<unk>` + the piece and drops `<unk>`'s pieces, so that a
        // leading space is kept as a word's `▁` and not taken for a dummy prefix.
        let unk = self.model.encode(&self.unk, false).len();
        let ids = self.model.encode(&format!("{}{s}", self.unk), false);
        if ids.len() >= unk { ids[unk..].to_vec() } else { ids }
    }

    /// The text cut at added tokens, at each position the longest that starts there
    /// (transformers' `Trie.split`).
    fn split<'a>(&'a self, text: &'a str) -> Vec<Piece<'a>> {
        let mut pieces = Vec::new();
        let (mut start, mut at) = (0, 0);
        while at < text.len() {
            let rest = &text[at..];
            let found = self
                .added
                .iter()
                .filter(|t| !t.content.is_empty() && rest.starts_with(&t.content))
                .max_by_key(|t| t.content.len());
            match found {
                Some(t) => {
                    if start < at {
                        pieces.push(Piece::Text(&text[start..at]));
                    }
                    pieces.push(Piece::Added(t));
                    at += t.content.len();
                    start = at;
                }
                None => at += rest.chars().next().map_or(1, char::len_utf8),
            }
        }
        if start < text.len() {
            pieces.push(Piece::Text(&text[start..]));
        }
        pieces
    }

    /// Text of generated ids, added tokens marked special and control pieces skipped, the
    /// text's first space dropped (as `convert_tokens_to_string` drops the dummy prefix).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            match self.added.iter().find(|t| t.id == id) {
                Some(t) if t.special => {}
                Some(t) => bytes.extend(t.content.as_bytes()),
                None if self
                    .model
                    .piece(id)
                    .is_some_and(|p| matches!(p.kind, PieceKind::Control | PieceKind::Unknown)) => {}
                None => bytes.extend(self.model.bytes(id)),
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.strip_prefix(' ').map(str::to_owned).unwrap_or(text)
    }

    /// The bytes token `id` puts in the text, a space for `▁`, an added token's content.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        match self.added.iter().find(|t| t.id == id) {
            Some(t) => t.content.clone().into_bytes(),
            None => self.model.bytes(id),
        }
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.added.iter().find(|t| t.content == token).map(|t| t.id).or_else(|| self.model.id(token))
    }

    pub fn bos(&self) -> Option<u32> {
        self.bos.filter(|_| self.add_bos)
    }

    /// How many ids the tokenizer can produce (the model's embedding must have as many rows).
    pub fn vocab_len(&self) -> usize {
        self.added.iter().map(|t| t.id as usize + 1).max().unwrap_or(0).max(self.model.len())
    }
}

enum Piece<'a> {
    Text(&'a str),
    Added(&'a AddedToken),
}

/// Python's `str.isspace`: Unicode White_Space and the four information separators.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::invalid(path.display().to_string(), e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}
