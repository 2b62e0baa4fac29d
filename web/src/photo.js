// A photo file as the engine takes it: refused when it is a JPEG cut short. Browsers decode a
// truncated JPEG without a word, filling the missing part with gray; the native engine refuses it
// (crate/src/image.rs, `jpeg_is_whole`, the same walk), and so does the package.

/**
 * Whether a JPEG file's bytes reach its end-of-image marker: segments are walked by their
 * lengths (an EXIF thumbnail's own markers are skipped), each scan's entropy-coded data to the
 * next marker. Data after the end (some phones append their own) is allowed.
 * @param {Uint8Array} bytes
 */
export function jpegIsWhole(bytes) {
  let at = 2; // past SOI
  while (at + 1 < bytes.length) {
    if (bytes[at] !== 0xff) return false;
    const marker = bytes[at + 1];
    if (marker === 0xd9) return true;
    if (marker === 0xff)
      at += 1; // fill byte
    else if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8))
      at += 2; // no length
    else {
      if (at + 3 >= bytes.length) return false;
      at += 2 + ((bytes[at + 2] << 8) | bytes[at + 3]);
      if (marker === 0xda) {
        // To the next 0xFF that is not a stuffed 0x00 or a restart marker.
        while (
          at + 1 < bytes.length &&
          !(bytes[at] === 0xff && bytes[at + 1] !== 0x00 && !(bytes[at + 1] >= 0xd0 && bytes[at + 1] <= 0xd7))
        ) {
          at += 1;
        }
      }
    }
  }
  return false;
}

/** Refuse a blob that is a truncated JPEG (JPEG by its magic bytes, whatever its type says). */
export async function checkPhotoBlob(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && !jpegIsWhole(bytes)) {
    throw new Error('cannot decode the image: the JPEG file is truncated');
  }
}
