//! A SentencePiece BPE model (`tokenizer.model`, the `ModelProto` protobuf) and its encoding,
//! as the `sentencepiece` library runs it (`bpe_model.cc`): the text normalised (spaces as
//! `▁`), split into characters, and the adjacent pair whose union is the highest-scoring piece
//! merged until none is left; a symbol outside the vocabulary becomes its UTF-8 bytes'
//! `<0xNN>` pieces (byte fallback) or `<unk>`.
//!
//! Only what Phi-3.5's (LLaMA-2's) model uses is accepted: BPE, the identity normaliser, no
//! collapsing of whitespace. Anything else is refused by name rather than encoded differently.

use std::collections::{BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `SentencePiece.Type` values (`sentencepiece_model.proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceKind {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => return None,
        })
    }
}

/// Written as `[piece, score, kind]`: 32000 of them are most of a tokenizer file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "(String, f32, PieceKind)", into = "(String, f32, PieceKind)")]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceKind,
}

impl From<(String, f32, PieceKind)> for Piece {
    fn from((piece, score, kind): (String, f32, PieceKind)) -> Self {
        Self { piece, score, kind }
    }
}

impl From<Piece> for (String, f32, PieceKind) {
    fn from(p: Piece) -> Self {
        (p.piece, p.score, p.kind)
    }
}

/// The parts of a `ModelProto` that encoding depends on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SentencePiece {
    pub pieces: Vec<Piece>,
    pub byte_fallback: bool,
    /// The normaliser's `add_dummy_prefix`: a `▁` before the text (legacy tokenizers only).
    pub add_dummy_prefix: bool,
    #[serde(skip)]
    index: Index,
}

/// Lookups built from the pieces.
#[derive(Clone, Debug, Default)]
struct Index {
    /// The pieces a merge may produce.
    mergeable: HashMap<String, u32>,
    bytes: Vec<Option<u32>>,
    unk: u32,
}

const WHAT: &str = "tokenizer.model";

impl SentencePiece {
    /// Parse `tokenizer.model`.
    pub fn from_proto(bytes: &[u8]) -> Result<Self> {
        let bad = |m: &str| Error::invalid(WHAT, m.to_owned());
        let mut pieces = Vec::new();
        let (mut model_type, mut byte_fallback) = (1, false);
        let (mut normalizer, mut add_dummy_prefix, mut remove_extra_whitespaces, mut charsmap) =
            (String::new(), true, true, false);
        for field in Fields(bytes) {
            match field? {
                (1, Value::Bytes(p)) => {
                    let mut piece = Piece { piece: String::new(), score: 0.0, kind: PieceKind::Normal };
                    for f in Fields(p) {
                        match f? {
                            (1, Value::Bytes(s)) => {
                                piece.piece = String::from_utf8(s.to_vec()).map_err(|_| bad("a piece is not UTF-8"))?
                            }
                            (2, Value::Fixed32(v)) => piece.score = f32::from_bits(v),
                            (3, Value::Varint(v)) => {
                                piece.kind = PieceKind::from_proto(v).ok_or_else(|| bad("unknown piece type"))?
                            }
                            _ => {}
                        }
                    }
                    pieces.push(piece);
                }
                (2, Value::Bytes(trainer)) => {
                    for f in Fields(trainer) {
                        match f? {
                            (3, Value::Varint(v)) => model_type = v,
                            (35, Value::Varint(v)) => byte_fallback = v != 0,
                            _ => {}
                        }
                    }
                }
                (3, Value::Bytes(spec)) => {
                    for f in Fields(spec) {
                        match f? {
                            (1, Value::Bytes(s)) => normalizer = String::from_utf8_lossy(s).into_owned(),
                            (2, Value::Bytes(s)) => charsmap = !s.is_empty(),
                            (3, Value::Varint(v)) => add_dummy_prefix = v != 0,
                            (4, Value::Varint(v)) => remove_extra_whitespaces = v != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if model_type != 2 {
            return Err(bad(&format!("model type {model_type} is not BPE (2); only BPE models are supported")));
        }
        if charsmap || !matches!(normalizer.as_str(), "identity" | "") {
            return Err(bad(&format!("normaliser `{normalizer}` is not supported (only `identity`)")));
        }
        if remove_extra_whitespaces {
            return Err(bad("remove_extra_whitespaces is not supported"));
        }
        Self::new(pieces, byte_fallback, add_dummy_prefix)
    }

    pub fn new(pieces: Vec<Piece>, byte_fallback: bool, add_dummy_prefix: bool) -> Result<Self> {
        let mut sp = Self { pieces, byte_fallback, add_dummy_prefix, index: Index::default() };
        sp.index()?;
        Ok(sp)
    }

    /// Build the lookups (after deserialising).
    pub fn index(&mut self) -> Result<()> {
        let mut index = Index { bytes: vec![None; 256], ..Index::default() };
        let mut unk = None;
        for (id, p) in self.pieces.iter().enumerate() {
            let id = u32::try_from(id).map_err(|_| Error::invalid(WHAT, "too many pieces"))?;
            match p.kind {
                PieceKind::Normal => {
                    index.mergeable.insert(p.piece.clone(), id);
                }
                // The library matches user-defined pieces before BPE and splits merged unused
                // ones again; neither is in Phi-3.5's (LLaMA-2's) model, so neither is written.
                PieceKind::UserDefined | PieceKind::Unused => {
                    return Err(Error::invalid(WHAT, format!("{:?} pieces are not supported", p.kind)));
                }
                PieceKind::Unknown => unk = Some(id),
                PieceKind::Byte => {
                    let byte = byte_piece(&p.piece)
                        .ok_or_else(|| Error::invalid(WHAT, format!("byte piece {:?}", p.piece)))?;
                    index.bytes[byte as usize] = Some(id);
                }
                PieceKind::Control => {}
            }
        }
        index.unk = unk.ok_or_else(|| Error::invalid(WHAT, "no <unk> piece"))?;
        if self.byte_fallback && index.bytes.iter().any(Option::is_none) {
            return Err(Error::invalid(WHAT, "byte fallback without all 256 byte pieces"));
        }
        self.index = index;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn piece(&self, id: u32) -> Option<&Piece> {
        self.pieces.get(id as usize)
    }

    pub fn id(&self, piece: &str) -> Option<u32> {
        let other = || self.pieces.iter().position(|p| p.piece == piece).map(|i| i as u32);
        self.index.mergeable.get(piece).copied().or_else(other)
    }

    /// The ids of `text`: spaces become `▁`, a `▁` goes first when `dummy_prefix` and the
    /// text is not empty, then BPE.
    pub fn encode(&self, text: &str, dummy_prefix: bool) -> Vec<u32> {
        if text.is_empty() {
            return Vec::new();
        }
        let normalized = format!("{}{}", if dummy_prefix { "▁" } else { "" }, text.replace(' ', "▁"));
        // Symbols as byte ranges of `normalized`, linked left and right; a merged symbol's
        // right part is emptied.
        let mut symbols: Vec<(usize, usize)> = normalized.char_indices().map(|(i, c)| (i, i + c.len_utf8())).collect();
        let n = symbols.len();
        let mut left: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        let mut right: Vec<Option<usize>> = (0..n).map(|i| Some(i + 1).filter(|&r| r < n)).collect();
        let mut agenda = BinaryHeap::new();
        let push = |agenda: &mut BinaryHeap<Pair>, symbols: &[(usize, usize)], l: usize, r: usize| {
            let joined = &normalized[symbols[l].0..symbols[r].1];
            if let Some(&id) = self.index.mergeable.get(joined) {
                agenda.push(Pair { score: self.pieces[id as usize].score, left: l, right: r, len: joined.len() });
            }
        };
        for i in 1..n {
            push(&mut agenda, &symbols, i - 1, i);
        }
        while let Some(pair) = agenda.pop() {
            let (l, r) = (pair.left, pair.right);
            // Stale: one side was merged away or grew since the pair was queued.
            if symbols[l].0 == symbols[l].1
                || symbols[r].0 == symbols[r].1
                || right[l] != Some(r)
                || symbols[r].1 - symbols[l].0 != pair.len
            {
                continue;
            }
            symbols[l].1 = symbols[r].1;
            symbols[r] = (symbols[r].1, symbols[r].1);
            right[l] = right[r];
            if let Some(rr) = right[r] {
                left[rr] = Some(l);
            }
            if let Some(ll) = left[l] {
                push(&mut agenda, &symbols, ll, l);
            }
            if let Some(rr) = right[l] {
                push(&mut agenda, &symbols, l, rr);
            }
        }
        let mut ids = Vec::new();
        let mut at = Some(0).filter(|_| n > 0);
        while let Some(i) = at {
            let s = &normalized[symbols[i].0..symbols[i].1];
            match self.index.mergeable.get(s) {
                Some(&id) => ids.push(id),
                None if self.byte_fallback => ids.extend(s.bytes().filter_map(|b| self.index.bytes[b as usize])),
                // As the library: a run of unknown symbols is one <unk>.
                None if ids.last() == Some(&self.index.unk) => {}
                None => ids.push(self.index.unk),
            }
            at = right[i];
        }
        ids
    }

    /// The bytes piece `id` stands for in text: `▁` as a space, `<0xNN>` as byte NN, a
    /// control or unknown piece as its own text.
    pub fn bytes(&self, id: u32) -> Vec<u8> {
        match self.piece(id) {
            Some(Piece { kind: PieceKind::Byte, piece, .. }) => byte_piece(piece).map(|b| vec![b]).unwrap_or_default(),
            Some(p) => p.piece.replace('▁', " ").into_bytes(),
            None => Vec::new(),
        }
    }
}

/// A queued merge; the highest score first, then the leftmost (as `bpe_model.cc`).
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    /// The merged symbol's length when queued, to tell a stale entry.
    len: usize,
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pair {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&other.score).then(other.left.cmp(&self.left))
    }
}

/// `<0xNN>` → NN.
pub(super) fn byte_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2).then(|| u8::from_str_radix(hex, 16).ok()).flatten()
}

/// A protobuf wire-format reader: the (field number, value) pairs of one message.
struct Fields<'a>(&'a [u8]);

enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let key = varint(&mut self.0)?;
            let value = match key & 7 {
                0 => Value::Varint(varint(&mut self.0)?),
                1 => {
                    take(&mut self.0, 8)?;
                    Value::Fixed64
                }
                2 => {
                    let len = usize::try_from(varint(&mut self.0)?).ok()?;
                    Value::Bytes(take(&mut self.0, len)?)
                }
                5 => Value::Fixed32(u32::from_le_bytes(take(&mut self.0, 4)?.try_into().ok()?)),
                _ => return None,
            };
            Some((key >> 3, value))
        })();
        match field {
            Some(f) => Some(Ok(f)),
            None => {
                self.0 = &[];
                Some(Err(Error::invalid(WHAT, "not a SentencePiece model (bad protobuf)")))
            }
        }
    }
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
    *bytes = tail;
    Some(head)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}
