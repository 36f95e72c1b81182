// The simulator's pictures: exact sizes, determinism, visible differences, speed, previews.
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { renderImage, renderPreview } from "../../src/sim/media.js";
import { paintScene, sceneOf } from "../../src/sim/pattern.js";

/** Width and height from a PNG's IHDR chunk (which must come first). */
function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  expect([...bytes.subarray(0, 8)]).toEqual(sig);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(Buffer.from(bytes.subarray(12, 16)).toString("latin1")).toBe("IHDR");
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Mean absolute difference per channel (0–255) of two encoded pictures of the same size. */
async function meanDiff(a: Uint8Array, b: Uint8Array): Promise<number> {
  const [pa, pb] = await Promise.all([a, b].map((x) => sharp(x).removeAlpha().raw().toBuffer()));
  expect(pa!.length).toBe(pb!.length);
  let sum = 0;
  for (let i = 0; i < pa!.length; i++) sum += Math.abs(pa![i]! - pb![i]!);
  return sum / pa!.length;
}

const IMAGE_SIZES: [number, number][] = [
  [1024, 1024],
  [512, 512],
  [768, 1024],
  [576, 1024],
  [1024, 768],
  [1024, 576],
];

describe("sim media: images", () => {
  it.each(IMAGE_SIZES)("renders a PNG of exactly %i×%i", async (width, height) => {
    const png = await renderImage({ prompt: "a lighthouse", seed: 7, width, height, format: "png" });
    expect(pngSize(png)).toEqual({ width, height });
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", width, height]);
  });

  it("renders WebP when asked", async () => {
    const webp = await renderImage({
      prompt: "a lighthouse",
      seed: 7,
      width: 1024,
      height: 576,
      format: "webp",
    });
    expect(Buffer.from(webp.subarray(0, 4)).toString("latin1")).toBe("RIFF");
    expect(Buffer.from(webp.subarray(8, 12)).toString("latin1")).toBe("WEBP");
    const meta = await sharp(webp).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["webp", 1024, 576]);
  });

  it("gives identical bytes for identical inputs", async () => {
    const o = { prompt: "same", seed: 99, width: 512, height: 512, format: "png" as const };
    const [a, b] = await Promise.all([renderImage(o), renderImage(o)]);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const w = { ...o, format: "webp" as const, variant: 2 };
    expect(Buffer.from(await renderImage(w)).equals(Buffer.from(await renderImage(w)))).toBe(true);
  });

  it("looks clearly different for another prompt, seed or variant", async () => {
    const base = { prompt: "a red fox", seed: 1, width: 256, height: 256, format: "png" as const };
    const a = await renderImage(base);
    const others = await Promise.all([
      renderImage({ ...base, prompt: "a red fox." }),
      renderImage({ ...base, seed: 2 }),
      renderImage({ ...base, variant: 1 }),
    ]);
    for (const other of others) expect(await meanDiff(a, other)).toBeGreaterThan(12);
  });

  it("paints prompts with different hashes in different colours across many prompts", () => {
    const means = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const px = paintScene(sceneOf(`prompt ${i}`, 0), 32, 32);
      let r = 0;
      let g = 0;
      let b = 0;
      for (let j = 0; j < px.length; j += 3) {
        r += px[j]!;
        g += px[j + 1]!;
        b += px[j + 2]!;
      }
      means.add([r, g, b].map((v) => Math.round(v / 1024 / 16)).join(","));
    }
    expect(means.size).toBeGreaterThan(10);
  });

  // How fast it paints is the benchmarks' business (a timed assertion fails on a loaded machine).
  it("paints a different 1024² PNG for each seed", async () => {
    const o = { prompt: "speed", seed: 5, width: 1024, height: 1024, format: "png" as const };
    const [a, b] = await Promise.all([renderImage(o), renderImage({ ...o, seed: 6 })]);
    for (const png of [a, b]) {
      const meta = await sharp(Buffer.from(png)).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["png", 1024, 1024]);
    }
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });

  it("makes a tiny JPEG preview that fades in with progress", async () => {
    const o = { prompt: "preview", seed: 3, width: 1024, height: 576 };
    const early = await renderPreview({ ...o, progress: 0.25 });
    const late = await renderPreview({ ...o, progress: 1 });
    expect(early).toMatch(/^data:image\/jpeg;base64,/);
    const decode = (uri: string): Buffer => Buffer.from(uri.slice(uri.indexOf(",") + 1), "base64");
    const meta = await sharp(decode(late)).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 64, 36]);
    expect(await meanDiff(decode(early), decode(late))).toBeGreaterThan(5);
  });

  it("refuses sizes that are not positive integers", async () => {
    await expect(renderImage({ prompt: "x", seed: 1, width: 0, height: 10, format: "png" })).rejects.toThrow(
      RangeError,
    );
    await expect(
      renderImage({ prompt: "x", seed: 1, width: 10.5, height: 10, format: "png" }),
    ).rejects.toThrow(RangeError);
  });
});
