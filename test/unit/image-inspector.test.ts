// The input-image inspector on multi-frame images: the pixel limit and the full decode cover every
// frame of an animated WebP, not only its first (the backend gets all of the bytes).
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { createImageInspector } from "../../src/infra/image-inspector.js";
import { animatedWebp } from "../helpers/images.js";

describe("image inspector, animated WebP", () => {
  it("builds a valid animated fixture (every frame decodes)", async () => {
    const webp = await animatedWebp(4, 64);
    expect((await sharp(webp).metadata()).pages).toBe(4);
    await sharp(webp, { pages: -1, failOn: "warning" }).stats();
  });

  it("counts the pixels of every frame against the limit", async () => {
    const inspector = createImageInspector({ maxPixels: 100 * 100 * 4, concurrency: 1 });
    // Each 100×100 frame is within the limit; ten of them are not.
    expect(await inspector.inspect(await animatedWebp(10, 100))).toMatchObject({
      ok: false,
      reason: "max_pixels",
    });
    expect(await inspector.inspect(await animatedWebp(4, 100))).toMatchObject({
      ok: true,
      mediaType: "image/webp",
    });
  });

  it("decodes every frame: a corrupt later frame is refused", async () => {
    const inspector = createImageInspector({ maxPixels: 25_000_000, concurrency: 1 });
    expect(await inspector.inspect(await animatedWebp(3, 64, true))).toMatchObject({
      ok: false,
      reason: "decode",
    });
  });
});
