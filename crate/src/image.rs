//! Photo → the five 384 px views FUSION reads (spec §2, `static_hd`): four tiles of a 768×768
//! resize in row-major order, then the whole photo resized to 384×384 (the question view).
//! Resizing is Pillow's bicubic, bit for bit (`Resample.c`: a = −0.5, support widened by the
//! scale when downsampling, 22-bit fixed-point coefficients, horizontal then vertical pass with
//! 8-bit rounding between), so views match the reference exactly.

use crate::error::{Error, Result};

/// Side of every view.
pub const VIEW: usize = 384;

/// The five normalised views, `[5, 3, size, size]`, channels first: TL, TR, BL, BR, whole.
#[derive(Clone, Debug)]
pub struct Views {
    pub size: usize,
    pub data: Vec<f32>,
}

impl Views {
    /// Preprocess an RGB photo (`width·height·3` bytes, row-major).
    pub fn from_rgb(rgb: &[u8], width: usize, height: usize) -> Result<Self> {
        Ok(Self::from_views_u8(&views_u8(rgb, width, height)?))
    }

    /// Normalise 8-bit views `[5, S, S, 3]` (HWC) as the reference processor does:
    /// `float32(u8 · (1/255) in f64)`, then `(x − 0.5) / 0.5` in f32.
    pub fn from_views_u8(views: &[u8]) -> Self {
        let size = ((views.len() / 15) as f64).sqrt() as usize;
        let mut data = vec![0f32; views.len()];
        for v in 0..5 {
            for y in 0..size {
                for x in 0..size {
                    for c in 0..3 {
                        let u = views[((v * size + y) * size + x) * 3 + c];
                        let unit = (u as f64 * (1.0 / 255.0)) as f32;
                        data[((v * 3 + c) * size + y) * size + x] = (unit - 0.5) / 0.5;
                    }
                }
            }
        }
        Self { size, data }
    }

    /// View `i` as `[3, size, size]`.
    pub fn view(&self, i: usize) -> &[f32] {
        let n = 3 * self.size * self.size;
        &self.data[i * n..(i + 1) * n]
    }
}

/// The five 8-bit views `[5, 384, 384, 3]` (HWC), before normalisation.
pub fn views_u8(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    if width == 0 || height == 0 || rgb.len() != width * height * 3 {
        return Err(Error::invalid(
            "image",
            format!("expected {width}×{height} RGB pixels ({} bytes), got {} bytes", width * height * 3, rgb.len()),
        ));
    }
    let big = resize_bicubic(rgb, width, height, 2 * VIEW, 2 * VIEW);
    let mut out = Vec::with_capacity(5 * VIEW * VIEW * 3);
    for (ty, tx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        for y in 0..VIEW {
            let row = ((ty * VIEW + y) * 2 * VIEW + tx * VIEW) * 3;
            out.extend_from_slice(&big[row..row + VIEW * 3]);
        }
    }
    // The question view is resized from the original photo, not from the 768 px one.
    out.extend_from_slice(&resize_bicubic(rgb, width, height, VIEW, VIEW));
    Ok(out)
}

/// Decode a photo file's bytes to RGB (natively; the browser decodes with `createImageBitmap`),
/// the way a person sees it: turned by its EXIF orientation, as browsers show it and
/// `createImageBitmap` decodes it by default (a phone stores a portrait photo as landscape
/// pixels and orientation 6). A JPEG cut short is refused ([`jpeg_is_whole`]): decoders fill
/// the missing part with gray and say nothing.
#[cfg(not(target_family = "wasm"))]
pub fn decode(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize)> {
    use image::ImageDecoder;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::invalid("image", e.to_string()))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_whole(bytes) {
        return Err(Error::invalid("image", "cannot decode the photo: the JPEG file is truncated"));
    }
    let cannot = |e: image::ImageError| Error::invalid("image", format!("cannot decode the photo: {e}"));
    let mut decoder = reader.into_decoder().map_err(cannot)?;
    // A 20000×20000 photo would need 1.2 GB as RGB: refuse what no phone camera makes.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE as u32);
    limits.max_image_height = Some(MAX_SIDE as u32);
    limits.max_alloc = Some(512 << 20);
    decoder.set_limits(limits).map_err(cannot)?;
    let orientation = decoder.orientation().map_err(cannot)?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(cannot)?;
    img.apply_orientation(orientation);
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    Ok((rgb.into_raw(), w, h))
}

/// Whether a JPEG file reaches its end-of-image marker: its segments are walked by their
/// lengths (so an EXIF thumbnail's own markers are skipped) and each scan's entropy-coded data
/// to the next marker. Data after the end (some phones append their own) is allowed. The
/// browser package runs the same walk before decoding (`web/src/photo.js`).
pub fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let mut at = 2; // past SOI
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            return false;
        }
        let marker = bytes[at + 1];
        match marker {
            0xD9 => return true,
            // Fill bytes, and markers without a length (RSTn, a stray SOI).
            0xFF => at += 1,
            0x01 | 0xD0..=0xD8 => at += 2,
            _ => {
                let Some(len) = bytes.get(at + 2..at + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else {
                    return false;
                };
                at += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data: to the next 0xFF that is not a stuffed 0x00 or a restart.
                    let in_scan = |at: usize| bytes[at] != 0xFF || matches!(bytes[at + 1], 0x00 | 0xD0..=0xD7);
                    while at + 1 < bytes.len() && in_scan(at) {
                        at += 1;
                    }
                }
            }
        }
    }
    false
}

/// Largest photo side accepted.
pub const MAX_SIDE: usize = 16384;

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output index, the first input
/// index and fixed-point weights.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filterscale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize; // C's (int) truncates
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax).map(|x| bicubic((x as f64 - center + 0.5) * ss)).collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let scaled = k * (1u32 << PRECISION_BITS) as f64;
                    (if k < 0.0 { -0.5 + scaled } else { 0.5 + scaled }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Pillow's `Image.resize(size, BICUBIC)` for RGB: horizontal pass over the rows the vertical
/// pass needs, then the vertical pass; each pass skipped when its size is unchanged.
pub fn resize_bicubic(rgb: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let (mut src, mut src_w) = (rgb.to_vec(), w);
    let vert = coefficients(h, out_h);
    let first = vert[0].0;
    let last = vert[out_h - 1].0 + vert[out_h - 1].1.len();
    if out_w != w {
        let horiz = coefficients(w, out_w);
        let rows = if out_h != h { first..last } else { 0..h };
        let mut tmp = Vec::with_capacity(rows.len() * out_w * 3);
        for y in rows {
            for (xmin, k) in &horiz {
                for c in 0..3 {
                    let mut ss = 1i32 << (PRECISION_BITS - 1);
                    for (i, &kx) in k.iter().enumerate() {
                        ss = ss.wrapping_add(rgb[(y * w + xmin + i) * 3 + c] as i32 * kx);
                    }
                    tmp.push(clip8(ss));
                }
            }
        }
        src = tmp;
        src_w = out_w;
    } else if out_h != h {
        src = rgb[first * w * 3..last * w * 3].to_vec();
    }
    if out_h == h {
        return src;
    }
    let offset = if out_w != w || out_h != h { first } else { 0 };
    let mut out = Vec::with_capacity(out_w * out_h * 3);
    for (ymin, k) in &vert {
        for x in 0..src_w {
            for c in 0..3 {
                let mut ss = 1i32 << (PRECISION_BITS - 1);
                for (i, &ky) in k.iter().enumerate() {
                    ss = ss.wrapping_add(src[((ymin - offset + i) * src_w + x) * 3 + c] as i32 * ky);
                }
                out.push(clip8(ss));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_resize_is_a_copy() {
        let px: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8 * 7).collect();
        assert_eq!(resize_bicubic(&px, 4, 3, 4, 3), px);
    }

    #[test]
    fn a_flat_photo_stays_flat() {
        let px = vec![200u8; 10 * 7 * 3];
        assert!(resize_bicubic(&px, 10, 7, 23, 5).iter().all(|&v| v == 200));
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(views_u8(&[0; 5], 2, 1).is_err());
        assert!(views_u8(&[], 0, 0).is_err());
    }
}
