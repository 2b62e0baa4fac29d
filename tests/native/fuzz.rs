//! Mutation fuzzing of everything a user or a file controls, with a fixed budget per target
//! (`FUSION_FUZZ_ITERS`, default 2000) so it runs in CI: manifests, safetensors shards, photo
//! bytes, tokenizer input. Every case must end in `Ok` or a clear `Err`: never a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use fusion::config::Backbone;
use fusion::rng::SplitMix64;

fn iterations() -> usize {
    std::env::var("FUSION_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

/// `FUSION_FUZZ_SEED` to replay a failure, else a fresh seed from the clock; read once, so the
/// seed a failure prints is the one its cases were drawn from.
fn seed() -> u64 {
    std::env::var("FUSION_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    })
}

/// A seed and the generator it starts.
fn seeded() -> (u64, SplitMix64) {
    let seed = seed();
    (seed, SplitMix64::new(seed))
}

/// Flip, insert, delete or truncate a few bytes.
fn mutate(rng: &mut SplitMix64, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.next_u64() % 4 {
        let at = if out.is_empty() { 0 } else { (rng.next_u64() as usize) % out.len() };
        match rng.next_u64() % 5 {
            0 if !out.is_empty() => out[at] ^= 1 << (rng.next_u64() % 8),
            1 if !out.is_empty() => out[at] = rng.next_u64() as u8,
            2 => out.insert(at, rng.next_u64() as u8),
            3 if !out.is_empty() => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn no_panic(what: &str, seed: u64, i: usize, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("{what}: case {i} of seed {seed} panicked (FUSION_FUZZ_SEED={seed} replays it)");
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = crate::common::scratch(&format!("fuzz-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn manifests_and_shards() {
    let src = scratch("src");
    fusion::testing::write_tiny_checkpoint(&src, &fusion::testing::TinySpec::new(Backbone::Llama)).unwrap();
    let out = scratch("int4");
    fusion::convert::convert(&src, &out, &Default::default()).unwrap();
    let manifest = std::fs::read(out.join("manifest.json")).unwrap();
    let shard = std::fs::read(src.join("model-00002-of-00002.safetensors")).unwrap();
    let header_len = 8 + u64::from_le_bytes(shard[..8].try_into().unwrap()) as usize;
    let (s, mut rng) = seeded();
    let target = scratch("mutated");
    for i in 0..iterations() {
        let m = mutate(&mut rng, &manifest);
        no_panic("manifest", s, i, || {
            let _ = fusion::manifest::Manifest::from_json(&String::from_utf8_lossy(&m));
        });
        // Mutate the safetensors header (and sometimes cut the data) of a real shard.
        let mut bytes = mutate(&mut rng, &shard[..header_len]);
        if rng.next_u64() % 2 == 0 {
            bytes.extend_from_slice(&shard[header_len..]);
        }
        std::fs::write(target.join("model.safetensors"), &bytes).unwrap();
        no_panic("safetensors", s, i, || {
            if let Ok(mut c) = fusion::loader::Checkpoint::open(&target) {
                use fusion::loader::TensorSource;
                let names: Vec<String> = c.names().map(str::to_owned).collect();
                for n in names.iter().take(3) {
                    let _ = c.tensor(n);
                }
            }
        });
    }
}

#[test]
fn photo_bytes() {
    let jpeg = std::fs::read(crate::common::test_file("photos/extreme_ironing.jpg")).unwrap();
    // A PNG header claiming 20000×20000 pixels: refused by the size limit, never allocated.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    huge.extend_from_slice(&20000u32.to_be_bytes());
    huge.extend_from_slice(&20000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert!(fusion::image::decode(&huge).is_err());
    assert!(fusion::image::decode(&[]).is_err());
    let e = fusion::image::decode(&b"GIF89a\x01\0\x01\0"[..]).expect_err("a truncated GIF is refused");
    assert!(e.to_string().contains("cannot decode the photo"), "{e}");
    let (s, mut rng) = seeded();
    for i in 0..iterations() / 10 {
        let m = mutate(&mut rng, &jpeg[..jpeg.len().min(4096)]);
        no_panic("image", s, i, || {
            if let Ok((rgb, w, h)) = fusion::image::decode(&m) {
                let _ = fusion::image::views_u8(&rgb, w, h);
            }
        });
    }
}

/// A JPEG cut short is refused, wherever the cut falls; a whole one with bytes after its end
/// (as some phones append) is not.
#[test]
fn a_truncated_jpeg_is_refused() {
    for name in ["waterview.jpg", "exif6.jpg", "cmyk.jpg"] {
        let jpeg = std::fs::read(crate::common::test_file("photos").join(name)).unwrap();
        for cut in [jpeg.len() - 2, jpeg.len() * 3 / 4, jpeg.len() / 2, 600] {
            let e = fusion::image::decode(&jpeg[..cut]).expect_err(name).to_string();
            assert!(e.contains("the JPEG file is truncated"), "{name} cut at {cut}: {e}");
        }
        let mut trailed = jpeg.clone();
        trailed.extend_from_slice(b"SEFH\0\0\0\0trailer of a phone's own");
        assert!(fusion::image::decode(&trailed).is_ok(), "{name} with a trailer");
    }
}

/// The same photo in encodings a browser or phone may hand us (`tests/photos/`, made with
/// Pillow from `waterview.jpg`) decodes to (nearly) the same RGB pixels as its 8-bit PNG: 16 bits per channel, grayscale 16-bit, CMYK JPEG, the first frame of
/// animated GIF, PNG and WebP, and JPEGs with an EXIF orientation.
#[test]
fn unusual_photo_encodings_decode_like_the_8_bit_photo() {
    let dir = crate::common::test_file("photos");
    let read = |name: &str| {
        fusion::image::decode(&std::fs::read(dir.join(name)).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let (want, w, h) = read("rgb8.png");
    let mean_abs =
        |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / b.len() as f64;
    // (file, mean absolute difference allowed per channel value: lossy and palette formats differ a little)
    // exif6.jpg and exif3.jpg store the photo turned (90° counter-clockwise, 180°) with the EXIF
    // orientation (6, 3) that turns it back: decoded, it is the photo as a person sees it.
    for (name, tol) in [
        ("rgb16.png", 1.0),
        ("cmyk.jpg", 6.0),
        ("animated.gif", 8.0),
        ("animated.png", 0.0),
        ("animated.webp", 8.0),
        ("exif6.jpg", 3.0),
        ("exif3.jpg", 3.0),
    ] {
        let (got, gw, gh) = read(name);
        assert_eq!((gw, gh), (w, h), "{name}");
        let d = mean_abs(&got, &want);
        assert!(
            d <= tol,
            "{name}: mean absolute difference {d:.2} from the 8-bit photo (its first frame, for animations)"
        );
    }
    let (gray, ..) = read("gray16.png");
    let luma: Vec<u8> = want
        .chunks(3)
        .flat_map(|p| [((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114 + 500) / 1000) as u8; 3])
        .collect();
    let d = mean_abs(&gray, &luma);
    assert!(d <= 1.0, "gray16.png: mean absolute difference {d:.2} from the photo's luma");
}

#[test]
fn tokenizer_input() {
    let dir = scratch("tok");
    fusion::testing::write_tiny_checkpoint(&dir, &fusion::testing::TinySpec::new(Backbone::Phi)).unwrap();
    let t = fusion::tokenizer::Tokenizer::load(&dir, Backbone::Phi).unwrap();
    let (s, mut rng) = seeded();
    for i in 0..iterations() {
        let len = (rng.next_u64() % 300) as usize;
        let text: String = (0..len)
            .map(|_| match rng.next_u64() % 4 {
                0 => char::from_u32((rng.next_u64() % 0x11_0000) as u32).unwrap_or('\u{FFFD}'),
                1 => ['<', '>', '|', '\n', ' ', '\0'][(rng.next_u64() % 6) as usize],
                _ => (b'a' + (rng.next_u64() % 26) as u8) as char,
            })
            .collect();
        let text = if i % 50 == 0 { text.repeat(200) } else { text }; // very long input too
        no_panic("tokenizer", s, i, || {
            let _ = t.image_prompt(&text, None);
            let _ = t.text_prompt("Where?", Some(&text));
            let _ = t.follow_up(&text);
        });
    }
}
