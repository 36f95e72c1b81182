// Test images: real PNG/JPEG bytes from sharp, and hand-built PNGs (a decompression bomb).
import { createHash } from "node:crypto";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";

/** A small solid PNG. */
export function solidPng(colour: string, size = 8): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: colour } })
    .png()
    .toBuffer();
}

/** A small JPEG. */
export function solidJpeg(colour: string, size = 8): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: colour } })
    .jpeg()
    .toBuffer();
}

export function dataUri(type: string, bytes: Uint8Array): string {
  return `data:${type};base64,${Buffer.from(bytes).toString("base64")}`;
}

export function digestOf(bytes: Uint8Array): string {
  return `sha256-${createHash("sha256").update(bytes).digest("hex")}`;
}

/** A small solid PNG as an inline `data:` image, with its CAS digest. */
export async function inlinePng(colour: string): Promise<{ data: string; digest: string }> {
  const bytes = await solidPng(colour);
  return { data: dataUri("image/png", bytes), digest: digestOf(bytes) };
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/**
 * A valid 1-bit greyscale PNG of `width` × `height` zero pixels: 30000 × 30000 (900 megapixels) is
 * about 0.5 MB, small enough for a `data:` URI, and would take gigabytes once decoded.
 */
export function pngBomb(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const rows = Buffer.alloc((1 + Math.ceil(width / 8)) * height); // filter byte 0 + zero pixels
  const idat = deflateSync(rows, { level: 1 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", idat),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

function riffChunk(fourcc: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.write(fourcc, 0, "latin1");
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data, Buffer.alloc(data.length % 2)]);
}

function uint24(n: number): Buffer {
  const b = Buffer.alloc(3);
  b.writeUIntLE(n, 0, 3);
  return b;
}

/**
 * A hand-built animated WebP: `frames` lossless frames of `size` × `size`, each a whole-canvas
 * frame. With `corruptLast`, the last frame's bitstream is cut short (its chunk sizes still
 * consistent, so the file parses and its first frame decodes).
 */
export async function animatedWebp(frames: number, size: number, corruptLast = false): Promise<Buffer> {
  const still = await sharp({ create: { width: size, height: size, channels: 3, background: "#4a7" } })
    .webp({ lossless: true })
    .toBuffer();
  // RIFF header (12 bytes), then a VP8L chunk: "VP8L", its size, the bitstream.
  if (still.toString("latin1", 12, 16) !== "VP8L") throw new Error("expected a VP8L still");
  const bitstream = still.subarray(20, 20 + still.readUInt32LE(16));
  const frame = (data: Buffer) =>
    riffChunk(
      "ANMF",
      Buffer.concat([
        uint24(0),
        uint24(0),
        uint24(size - 1),
        uint24(size - 1),
        uint24(100),
        Buffer.from([0]),
        riffChunk("VP8L", data),
      ]),
    );
  const vp8x = Buffer.concat([Buffer.from([0x02, 0, 0, 0]), uint24(size - 1), uint24(size - 1)]);
  const anim = Buffer.from([0, 0, 0, 0, 0, 0]);
  const body = Buffer.concat([
    Buffer.from("WEBP", "latin1"),
    riffChunk("VP8X", vp8x),
    riffChunk("ANIM", anim),
    ...Array.from({ length: frames }, (_, i) =>
      frame(corruptLast && i === frames - 1 ? bitstream.subarray(0, 5) : bitstream),
    ),
  ]);
  const head = Buffer.alloc(8);
  head.write("RIFF", 0, "latin1");
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}
