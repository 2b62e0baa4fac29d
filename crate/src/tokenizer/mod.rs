//! The checkpoint's tokenizer, FUSION's chat templates (`fusion/conversation.py`, spec §6.3)
//! and the sentinel-splicing of `tokenizer_image_token`.
//!
//! Two kinds of tokenizer, as the reference loads them: LLaMA-3.1's `tokenizer.json` through
//! the `tokenizers` crate, and Phi-3.5's slow SentencePiece tokenizer ([`slow`]).

mod sentencepiece;
pub mod slow;

use std::path::Path;

use crate::config::Backbone;
use crate::error::{Error, Result};
use crate::model::{IMAGE_TOKEN_INDEX, LATENT_IMAGE_TOKEN_INDEX, Prompt};
use slow::SlowTokenizer;
use tokenizers::DecoderWrapper;

const IMAGE: &str = "<image>";
/// A converted model's tokenizer file: the checkpoint's `tokenizer.json`, or the slow
/// tokenizer's own JSON.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const SLOW_TOKENIZER_FILE: &str = "tokenizer.slow.json";
const LATENT: &str = "<latent_image>";

pub struct Tokenizer {
    inner: Inner,
    backbone: Backbone,
}

enum Inner {
    /// A `tokenizer.json`; `byte_level`: whether the vocabulary spells bytes as GPT-2's
    /// byte-level characters (LLaMA 3's), not as SentencePiece pieces.
    Fast {
        tokenizer: Box<tokenizers::Tokenizer>,
        byte_level: bool,
    },
    Slow(Box<SlowTokenizer>),
}

const PHI_SYSTEM: &str = "You are a helpful AI assistant.";
const LLAMA_SYSTEM: &str = "You are a helpful, highly intelligent language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language. Whenever an image is present in the conversation, very carefully examine it and consider its content when formulating your response.";

impl Tokenizer {
    /// A tokenizer file: a `tokenizer.json`, or the slow tokenizer's JSON that `fusion convert`
    /// writes ([`SlowTokenizer::to_json`]).
    pub fn from_bytes(json: &[u8], backbone: Backbone) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Format {
            format: Option<String>,
        }
        let format = serde_json::from_slice::<Format>(json).map_err(|e| Error::invalid("tokenizer", e.to_string()))?;
        if format.format.as_deref() == Some(slow::FORMAT) {
            return Ok(Self { inner: Inner::Slow(Box::new(SlowTokenizer::from_json(json)?)), backbone });
        }
        let inner =
            tokenizers::Tokenizer::from_bytes(json).map_err(|e| Error::invalid("tokenizer.json", e.to_string()))?;
        let byte_level = |d: &DecoderWrapper| matches!(d, DecoderWrapper::ByteLevel(_));
        let byte_level = match inner.get_decoder() {
            Some(DecoderWrapper::Sequence(s)) => s.get_decoders().iter().any(byte_level),
            Some(d) => byte_level(d),
            None => false,
        };
        Ok(Self { inner: Inner::Fast { tokenizer: Box::new(inner), byte_level }, backbone })
    }

    /// The tokenizer of a checkpoint or converted model folder.
    ///
    /// [OPEN §10.6, decided] When the folder holds both a slow tokenizer (`tokenizer.model`
    /// with a `tokenizer_config.json` naming `LlamaTokenizer`) and a `tokenizer.json`, the slow
    /// one is used: the reference loads `use_fast=False`, and the fast file's ids can differ.
    pub fn load(dir: &Path, backbone: Backbone) -> Result<Self> {
        if SlowTokenizer::present(dir)? {
            return Ok(Self { inner: Inner::Slow(Box::new(SlowTokenizer::load(dir)?)), backbone });
        }
        let path = dir.join(TOKENIZER_FILE);
        Self::from_bytes(&std::fs::read(&path).map_err(|e| Error::io(&path, e))?, backbone)
    }

    /// The file this tokenizer is written to in a converted model (its manifest names it).
    pub fn file_name(&self) -> &'static str {
        match self.inner {
            Inner::Fast { .. } => TOKENIZER_FILE,
            Inner::Slow(_) => SLOW_TOKENIZER_FILE,
        }
    }

    /// The tokenizer as one file's bytes, for [`Self::from_bytes`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        match &self.inner {
            Inner::Fast { tokenizer, .. } => tokenizer
                .to_string(false)
                .map(String::into_bytes)
                .map_err(|e| Error::invalid("tokenizer", e.to_string())),
            Inner::Slow(t) => t.to_json().map(String::into_bytes),
        }
    }

    /// The ids of a whole text, with the tokenizer's BOS (and EOS) when `special`.
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        match &self.inner {
            Inner::Fast { tokenizer, .. } => Ok(tokenizer
                .encode(text, special)
                .map_err(|e| Error::invalid("tokenizer", e.to_string()))?
                .get_ids()
                .to_vec()),
            Inner::Slow(t) => Ok(t.encode(text, special)),
        }
    }

    /// The ids of text that goes on from a turn marker of the template (an answer, a
    /// follow-up's turn), as the reference's ids of the whole conversation hold them.
    pub fn continuation(&self, text: &str) -> Result<Vec<u32>> {
        match &self.inner {
            Inner::Fast { .. } => self.encode(text, false),
            Inner::Slow(t) => Ok(t.continuation(text)),
        }
    }

    /// Text of generated ids, special tokens skipped (`skip_special_tokens=True`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match &self.inner {
            Inner::Fast { tokenizer, .. } => {
                tokenizer.decode(ids, true).map_err(|e| Error::invalid("tokenizer", e.to_string()))
            }
            Inner::Slow(t) => Ok(t.decode(ids)),
        }
    }

    /// New text of an answer as its ids arrive ([`TextStream`]).
    pub fn text_stream(&self) -> TextStream<'_> {
        TextStream { tokenizer: self, prefix: 0, read: 0 }
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        match &self.inner {
            Inner::Fast { tokenizer, .. } => tokenizer.token_to_id(token),
            Inner::Slow(t) => t.token_id(token),
        }
    }

    /// The bytes token `id` puts in the text (OpenAI's `logprobs[].bytes`; a token may hold
    /// part of a character): a byte-level vocabulary's characters mapped back to their bytes,
    /// a SentencePiece piece's `▁` as a space and `<0xNN>` as byte NN, a special token's text.
    /// Empty for an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let (tokenizer, byte_level) = match &self.inner {
            Inner::Fast { tokenizer, byte_level } => (tokenizer, *byte_level),
            Inner::Slow(t) => return t.token_bytes(id),
        };
        let Some(piece) = tokenizer.id_to_token(id) else { return Vec::new() };
        if byte_level {
            let chars = byte_level_chars();
            // A special token spelled outside the byte alphabet stands for its own text.
            return piece
                .chars()
                .map(|c| chars.iter().position(|&b| b == c).map(|b| b as u8))
                .collect::<Option<Vec<u8>>>()
                .unwrap_or_else(|| piece.into_bytes());
        }
        match sentencepiece::byte_piece(&piece) {
            Some(byte) => vec![byte],
            None => piece.replace('▁', " ").into_bytes(),
        }
    }

    /// The chat-template text of an image question.
    pub fn chat_text(&self, question: &str, system: Option<&str>) -> String {
        self.first_turn(
            &format!("<vision_start>{LATENT}<vision_end><vision_start>{IMAGE}<vision_end>\n{question}"),
            system,
        )
    }

    /// The template's system turn, a user turn holding `user` and the assistant's header.
    ///
    /// A system prompt given (an OpenAI `system` message, `--system`) takes the place of the
    /// template's own, as the reference's `conv.system` would and as Hugging Face's LLaMA-3.1
    /// template does; FUSION was tuned with the template's, which `None` keeps. Like a question,
    /// it is trimmed and never places an image.
    fn first_turn(&self, user: &str, system: Option<&str>) -> String {
        let default = match self.backbone {
            Backbone::Phi => PHI_SYSTEM,
            Backbone::Llama => LLAMA_SYSTEM,
        };
        let system = system.map_or_else(|| default.to_owned(), clean_text);
        match self.backbone {
            Backbone::Phi => format!("<|system|>\n{system}<|end|>\n<|user|>\n{user}<|end|>\n<|assistant|>\n"),
            Backbone::Llama => format!(
                "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            ),
        }
    }

    /// The ids that continue a conversation after an answer with a new user turn (the
    /// template's end of turn, the question, the assistant header), without BOS.
    pub fn follow_up(&self, question: &str) -> Result<Vec<u32>> {
        let question = clean_question(question)?;
        let text = match self.backbone {
            Backbone::Phi => format!("<|end|>\n<|user|>\n{question}<|end|>\n<|assistant|>\n"),
            Backbone::Llama => format!(
                "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{question}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            ),
        };
        self.continuation(&text)
    }

    /// The end-of-turn token of the chat template, when the vocabulary has it.
    pub fn end_of_turn(&self) -> Option<u32> {
        self.token_id(match self.backbone {
            Backbone::Phi => "<|end|>",
            Backbone::Llama => "<|eot_id|>",
        })
    }

    /// Tokenise an image question as the reference does: the template split at the two
    /// placeholders, each piece tokenised on its own with default special tokens, joined by
    /// the sentinels; when pieces start with BOS, one BOS is kept (`tokenizer_image_token`).
    /// The question ids for the tower are the stripped question tokenised alone (spec §1.4).
    pub fn image_prompt(&self, question: &str, system: Option<&str>) -> Result<Prompt> {
        let question = clean_question(question)?;
        let question = question.as_str();
        let text = self.chat_text(question, system);
        let bos = self.bos_id();
        let mut ids = Vec::new();
        let mut rest = text.as_str();
        let mut first = true;
        loop {
            let next = [(IMAGE, IMAGE_TOKEN_INDEX), (LATENT, LATENT_IMAGE_TOKEN_INDEX)]
                .into_iter()
                .filter_map(|(tag, id)| rest.find(tag).map(|at| (at, tag, id)))
                .min_by_key(|m| m.0);
            let piece = next.map_or(rest, |(at, _, _)| &rest[..at]);
            let mut t = self.encode(piece, true)?;
            if !first && bos.is_some() && t.first().copied() == bos {
                t.remove(0);
            }
            first = false;
            ids.extend(t.into_iter().map(i64::from));
            match next {
                Some((at, tag, id)) => {
                    ids.push(id);
                    rest = &rest[at + tag.len()..];
                }
                None => break,
            }
        }
        Ok(Prompt { ids, instructs: self.encode(question, true)? })
    }

    /// [OPEN §10.10] A question without a photo, which the reference cannot answer (our
    /// extension): the chat template with the question alone in the user turn (the system
    /// prompt as with a photo), tokenised whole, with no placeholders and no question ids for
    /// the tower. The model runs it as the plain LLM: no vision tower, latents or interaction
    /// layers ([`crate::model::FusionModel::prefill`]).
    pub fn text_prompt(&self, question: &str, system: Option<&str>) -> Result<Prompt> {
        let ids = self.encode(&self.first_turn(&clean_question(question)?, system), true)?;
        Ok(Prompt { ids: ids.into_iter().map(i64::from).collect(), instructs: Vec::new() })
    }

    /// The token the tokenizer puts first (BOS), if any.
    fn bos_id(&self) -> Option<u32> {
        self.encode("", true).ok()?.first().copied()
    }
}

/// GPT-2's `bytes_to_unicode`: the character a byte-level vocabulary spells each byte with
/// (printable Latin-1 as itself, the other bytes as the characters from U+0100 on, in order).
pub(crate) fn byte_level_chars() -> [char; 256] {
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    let mut chars = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let code = if printable(b) { b } else { 256 + extra };
        extra += u32::from(!printable(b));
        chars[b as usize] = char::from_u32(code).unwrap_or('?');
    }
    chars
}

/// A question as it enters a prompt: trimmed, and never placing an image (the placeholders and
/// vision markers are removed, as the reference strips them from the question, spec §1.4).
fn clean_question(text: &str) -> Result<String> {
    let cleaned = clean_text(text);
    if cleaned.is_empty() {
        return Err(Error::invalid("question", "the question is empty"));
    }
    Ok(cleaned)
}

/// Text as it enters a prompt, trimmed and with no placeholder or vision marker left.
fn clean_text(text: &str) -> String {
    [IMAGE, LATENT, "<vision_start>", "<vision_end>"]
        .iter()
        .fold(text.to_owned(), |t, tag| t.replace(tag, ""))
        .trim()
        .to_owned()
}

/// The text of generated ids, piece by piece, at a cost per id that does not grow with the
/// answer: decoding all ids at every step made a 512-token answer's last steps cost 60–80 µs of
/// CPU each (2048 tokens: 250–300 µs), between the GPU's steps. Each step decodes only a
/// window: the ids since the end of the text emitted before the last piece (for the context a
/// decoder needs, e.g. whether a space is a word's first character), and the text is new if
/// the window's decode extends the decode of its first part. A trailing U+FFFD (a character
/// whose bytes are still arriving) waits, as in Hugging Face's `DecodeStream` and TGI; here a
/// window that does not extend its prefix waits too instead of failing the answer.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    /// Where the window starts.
    prefix: usize,
    /// The ids up to here are in the text already emitted.
    read: usize,
}

impl TextStream<'_> {
    /// The text that the ids after the last call add to the answer, `ids` being the whole
    /// answer so far; `None` while that text is not yet whole.
    pub fn next(&mut self, ids: &[u32]) -> Result<Option<String>> {
        let (known, text) = self.window(ids)?;
        if text.len() <= known.len() || text.ends_with('\u{FFFD}') || !text.starts_with(&known) {
            return Ok(None);
        }
        (self.prefix, self.read) = (self.read, ids.len());
        Ok(Some(text[known.len()..].to_owned()))
    }

    /// The text that the ids after the last piece add to an answer that has ended, whole or
    /// not: a character whose bytes never all came (the token budget cut it) is U+FFFD, as in
    /// the answer's text decoded at once, so that the streamed text is that text. As in Hugging
    /// Face's `TextStreamer.end()`.
    pub fn rest(&self, ids: &[u32]) -> Result<String> {
        let (known, text) = self.window(ids)?;
        Ok(text.strip_prefix(known.as_str()).unwrap_or_default().to_owned())
    }

    /// The window's text up to the ids already emitted, and its whole text.
    fn window(&self, ids: &[u32]) -> Result<(String, String)> {
        Ok((self.tokenizer.decode(&ids[self.prefix..self.read])?, self.tokenizer.decode(&ids[self.prefix..])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(backbone: Backbone) -> Tokenizer {
        let json = serde_json::to_vec(&crate::testing::tokenizer_json(backbone)).unwrap();
        Tokenizer::from_bytes(&json, backbone).unwrap()
    }

    #[test]
    fn phi_prompt_puts_the_sentinels_inside_the_vision_markers() {
        let t = tiny(Backbone::Phi);
        let p = t.image_prompt("  What is this?\n", None).unwrap();
        let (vs, ve) = (t.token_id("<vision_start>").unwrap() as i64, t.token_id("<vision_end>").unwrap() as i64);
        let at = |id: i64| p.ids.iter().position(|&x| x == id).unwrap();
        let (latent, image) = (at(LATENT_IMAGE_TOKEN_INDEX), at(IMAGE_TOKEN_INDEX));
        assert!(latent < image);
        assert_eq!(&p.ids[latent - 1..=image + 1], &[vs, LATENT_IMAGE_TOKEN_INDEX, ve, vs, IMAGE_TOKEN_INDEX, ve]);
        assert_eq!(p.ids.iter().filter(|&&x| x < 0).count(), 2);
        // The tower's question is the stripped question alone.
        assert_eq!(t.decode(&p.instructs).unwrap(), "What is this?");
        // The prompt ends with the assistant header and its newline.
        let tail = t.encode("<|assistant|>\n", false).unwrap();
        assert_eq!(&p.ids[p.ids.len() - tail.len()..], tail.iter().map(|&x| x as i64).collect::<Vec<_>>());
    }

    #[test]
    fn llama_prompt_keeps_one_bos() {
        let t = tiny(Backbone::Llama);
        let bos = t.token_id("<|begin_of_text|>").unwrap() as i64;
        let p = t.image_prompt("first?", None).unwrap();
        assert_eq!(p.ids[0], bos);
        assert_eq!(p.ids.iter().filter(|&&x| x == bos).count(), 1, "{:?}", p.ids);
        assert_eq!(p.instructs[0], bos as u32, "the tower's question ids carry BOS too (spec §1.4)");
        assert!(
            t.chat_text("first?", None).ends_with("first?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        );
        let eot = t.end_of_turn().unwrap();
        assert_eq!(Some(eot), t.token_id("<|eot_id|>"));
        let follow = t.follow_up(" second? ").unwrap();
        assert_eq!(follow[0], eot, "a follow-up closes the previous answer's turn");
        assert!(!follow.contains(&(bos as u32)), "no BOS mid-conversation");
        assert!(t.decode(&follow).unwrap().contains("second?"));
    }

    #[test]
    fn a_text_prompt_is_the_image_prompt_without_the_photo() {
        for backbone in [Backbone::Phi, Backbone::Llama] {
            let t = tiny(backbone);
            let (text, image) =
                (t.text_prompt("  What is this?\n", None).unwrap(), t.image_prompt("What is this?", None).unwrap());
            assert!(text.ids.iter().all(|&id| id >= 0) && text.instructs.is_empty());
            // The image prompt's ids, BOS included, without its vision markers, sentinels and
            // the newline after them (one byte token here).
            let at = |id: i64| image.ids.iter().position(|&x| x == id).unwrap();
            let mut without = image.ids.clone();
            without.drain(at(LATENT_IMAGE_TOKEN_INDEX) - 1..=at(IMAGE_TOKEN_INDEX) + 2);
            assert_eq!(text.ids, without, "{backbone:?}");
            assert!(t.text_prompt(" <image> ", None).is_err());
        }
    }

    #[test]
    fn a_system_prompt_takes_the_place_of_the_templates() {
        for (backbone, default) in [(Backbone::Phi, PHI_SYSTEM), (Backbone::Llama, LLAMA_SYSTEM)] {
            let t = tiny(backbone);
            let text = t.chat_text("Where?", Some("Answer in French."));
            assert!(text.contains("Answer in French.") && !text.contains(default), "{text}");
            assert_eq!(t.chat_text("Where?", None), text.replace("Answer in French.", default));
            // As the template's own: only the system text differs, the question's ids stay.
            for prompt in [Tokenizer::image_prompt, Tokenizer::text_prompt] {
                let (plain, with) = (
                    prompt(&t, "Where?", None).unwrap(),
                    prompt(&t, "Where?", Some("  Answer in <image>French.\n")).unwrap(),
                );
                assert_eq!(
                    t.decode(&ids(&with)).unwrap(),
                    t.decode(&ids(&plain)).unwrap().replace(default, "Answer in French.")
                );
                assert_eq!(with.instructs, plain.instructs);
                assert_eq!(
                    with.ids.iter().filter(|&&id| id < 0).count(),
                    plain.ids.iter().filter(|&&id| id < 0).count(),
                    "no image placed"
                );
            }
        }
    }

    /// A prompt's token ids, its sentinels left out.
    fn ids(p: &Prompt) -> Vec<u32> {
        p.ids.iter().filter_map(|&id| u32::try_from(id).ok()).collect()
    }

    #[test]
    fn streamed_text_is_the_whole_decode_in_pieces() {
        for backbone in [Backbone::Phi, Backbone::Llama] {
            let t = tiny(backbone);
            let mut ids = t.encode("Un café à Zürich, 日本語 🙂 and  spaces\n", false).unwrap();
            // A special token mid-answer decodes to nothing (skipped, as in the whole decode).
            ids.insert(5, t.end_of_turn().unwrap());
            let mut stream = t.text_stream();
            let pieces: Vec<String> = (1..=ids.len()).filter_map(|n| stream.next(&ids[..n]).unwrap()).collect();
            assert!(pieces.len() > 5 && pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
            assert_eq!(pieces.concat(), t.decode(&ids).unwrap());
        }
    }

    /// Phi-3.5's kind of tokenizer: SentencePiece pieces with `▁` for spaces, bytes as
    /// `<0xNN>` tokens, and a decoder that strips the text's first space. A window that starts
    /// mid-answer must lose no space.
    #[test]
    fn streamed_text_of_a_sentencepiece_tokenizer() {
        let pieces = ["<unk>", "<s>", "</s>", "▁Un", "▁caf", "é", "▁in", "▁Z", "ür", "ich", ",", "▁", "▁the", "\n"];
        let bytes = (0..256).map(|b| format!("<0x{b:02X}>"));
        let vocab: serde_json::Map<_, _> =
            pieces.iter().map(|p| p.to_string()).chain(bytes).enumerate().map(|(i, p)| (p, i.into())).collect();
        let json = serde_json::json!({
            "version": "1.0", "added_tokens": [{"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null, "pre_tokenizer": null, "post_processor": null, "truncation": null, "padding": null,
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
            "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": true, "byte_fallback": true, "vocab": vocab, "merges": []},
        });
        let t = Tokenizer::from_bytes(json.to_string().as_bytes(), Backbone::Phi).unwrap();
        let id = |p: &str| t.token_id(p).unwrap_or_else(|| panic!("{p}"));
        // "Un café in Zürich, the 日 (E6 97 A5 as byte tokens)" with an end-of-turn mid-way.
        let ids: Vec<u32> = [
            "▁Un", "▁caf", "é", "▁in", "▁Z", "ür", "ich", ",", "</s>", "▁the", "▁", "<0xE6>", "<0x97>", "<0xA5>", "\n",
        ]
        .map(id)
        .to_vec();
        let mut stream = t.text_stream();
        let pieces: Vec<String> = (1..=ids.len()).filter_map(|n| stream.next(&ids[..n]).unwrap()).collect();
        assert_eq!(pieces.concat(), "Un café in Zürich, the 日\n");
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| t.token_bytes(id)).collect();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            " Un café in Zürich,</s> the 日\n",
            "each token's own bytes, the first space kept"
        );
        assert_eq!(pieces.concat(), t.decode(&ids).unwrap());
        assert!(pieces.contains(&" the".to_owned()) && pieces.contains(&"日".to_owned()), "{pieces:?}");
        assert_eq!(stream.rest(&ids).unwrap(), "", "all was streamed");
        // An answer that ends in the middle of 日: the rest is what its decoded text ends with.
        for cut in [&ids[..12], &ids[..13]] {
            let mut stream = t.text_stream();
            let pieces: String = (1..=cut.len()).filter_map(|n| stream.next(&cut[..n]).unwrap()).collect();
            let rest = stream.rest(cut).unwrap();
            assert!(rest.starts_with('\u{FFFD}'), "{rest:?}");
            assert_eq!(pieces + &rest, t.decode(cut).unwrap());
        }
    }

    #[test]
    fn a_byte_level_token_is_the_bytes_it_spells() {
        let t = tiny(Backbone::Llama);
        let text = "Un café à Zürich, 日本語 🙂";
        let ids = t.encode(text, false).unwrap();
        let bytes: Vec<Vec<u8>> = ids.iter().map(|&id| t.token_bytes(id)).collect();
        assert_eq!(bytes.concat(), text.as_bytes());
        assert!(
            bytes.iter().any(|b| std::str::from_utf8(b).is_err()),
            "a token holding part of a character: a weak test"
        );
        assert_eq!(t.token_bytes(t.end_of_turn().unwrap()), b"<|eot_id|>");
        assert!(t.token_bytes(u32::MAX).is_empty());
    }

    #[test]
    fn streamed_text_of_invalid_bytes_never_fails() {
        let t = tiny(Backbone::Llama);
        let mut rng = crate::rng::SplitMix64::new(3);
        let ids: Vec<u32> = (0..400).map(|_| (rng.next_u64() % 256) as u32).collect();
        let mut stream = t.text_stream();
        let text: String = (1..=ids.len()).filter_map(|n| stream.next(&ids[..n]).unwrap()).collect();
        assert!(!text.is_empty());
        assert!(t.decode(&ids).unwrap().starts_with(&text));
    }

    #[test]
    fn empty_questions_are_refused_and_tags_never_place_images() {
        let t = tiny(Backbone::Phi);
        assert!(t.image_prompt(" \n ", None).is_err());
        assert!(t.image_prompt("<image>", None).is_err());
        assert!(t.follow_up("<image>").is_err());
        let p = t.image_prompt("what <image> is <vision_start>this", None).unwrap();
        assert_eq!(p.ids.iter().filter(|&&x| x < 0).count(), 2);
        assert_eq!(t.decode(&p.instructs).unwrap(), "what  is this");
    }
}
