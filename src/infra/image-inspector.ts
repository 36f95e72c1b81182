// Untrusted input images checked with sharp: type by the bytes (PNG, JPEG, WebP), a pixel limit read
// from the header, then a full decode, so corrupt images and decompression bombs are refused.
import pLimit from "p-limit";
import sharp from "sharp";
import { sniffContentType } from "../core/media-type.js";
import type { ImageInspector, ImageVerdict, InputImageType } from "../core/ports.js";

/** Options of {@link createImageInspector}. */
export interface ImageInspectorOptions {
  /** Largest width × height accepted (`INPUT_IMAGE_MAX_PIXELS`). */
  readonly maxPixels: number;
  /**
   * Inspections running at once in this process (`INPUT_DECODE_CONCURRENCY`); the others wait. Each
   * holds one of libuv's thread-pool threads (4 by default) for up to about a second, and the file
   * system (the CAS) and `dns.lookup` need the same threads.
   */
  readonly concurrency: number;
}

const SHARP_FORMAT: Readonly<Record<InputImageType, string>> = {
  "image/png": "png",
  "image/jpeg": "jpeg",
  "image/webp": "webp",
};

function isInputType(type: string): type is InputImageType {
  return type in SHARP_FORMAT;
}

/**
 * Creates the inspector. Decoding runs on libuv's thread pool (sharp's async API), not on the event
 * loop, at most `concurrency` at once (bench/image-decode.ts measures both); the decode streams
 * through the image (`sequentialRead`), so its memory does not grow with the pixel count the way a
 * decode into one buffer would.
 */
export function createImageInspector(opts: ImageInspectorOptions): ImageInspector {
  const limit = pLimit(opts.concurrency);
  return { inspect: (bytes) => limit(() => inspect(bytes, opts.maxPixels)) };
}

/** Type by the first bytes, the pixel count (all frames) from the header, then a full decode. */
async function inspect(bytes: Uint8Array, maxPixels: number): Promise<ImageVerdict> {
  const sniffed = sniffContentType(bytes);
  if (!isInputType(sniffed)) {
    return { ok: false, reason: "media_type", message: "is not a PNG, JPEG or WebP image" };
  }
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width: number;
  let height: number;
  let frames: number;
  try {
    // The header only; the pixel limit is ours to report, so sharp's is off for this step.
    const meta = await sharp(input, { limitInputPixels: false }).metadata();
    if (meta.format !== SHARP_FORMAT[sniffed] || !meta.width || !meta.height) {
      return { ok: false, reason: "decode", message: "is not a readable image" };
    }
    width = meta.width;
    height = meta.height; // of one frame: sharp reads the first page unless told otherwise
    frames = meta.pages ?? 1;
  } catch {
    return { ok: false, reason: "decode", message: "is not a readable image" };
  }
  // An animated WebP goes to the backend whole: every frame counts, and every frame is decoded.
  if (width * height * frames > maxPixels) {
    const size = frames > 1 ? `${frames} frames of ${width}×${height}` : `${width}×${height}`;
    return {
      ok: false,
      reason: "max_pixels",
      message: `has ${size} pixels, more than the ${maxPixels} allowed`,
    };
  }
  try {
    // Every pixel of every frame is decoded (stats reads them all); any warning (truncation, bad
    // data) refuses.
    await sharp(input, {
      limitInputPixels: maxPixels,
      failOn: "warning",
      sequentialRead: true,
      pages: -1,
    }).stats();
  } catch {
    return { ok: false, reason: "decode", message: "is corrupt or truncated" };
  }
  return { ok: true, mediaType: sniffed, width, height };
}
