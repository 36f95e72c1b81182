// Media types from the first bytes of a file: the CAS stores bytes only.

export function sniffContentType(head: Uint8Array): string {
  const b = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, 16));
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return "image/png";
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  if (b.subarray(0, 4).toString("latin1") === "RIFF" && b.subarray(8, 12).toString("latin1") === "WEBP") {
    return "image/webp";
  }
  if (b.subarray(4, 8).toString("latin1") === "ftyp") return "video/mp4";
  if (b.subarray(0, 3).toString("latin1") === "GIF") return "image/gif";
  return "application/octet-stream";
}
