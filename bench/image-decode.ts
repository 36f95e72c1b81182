// `npx tsx bench/image-decode.ts [--concurrency N] [--limit L] [--rounds R]`: how much the input-image checks
// (sharp: header, pixel limit, full decode) hold up the event loop and libuv's thread pool. For the
// worst inputs the limits let through (a 1 MiB `data:` PNG and a 10 MiB JPEG at the 25-megapixel
// limit, and the 30000×30000 bomb that the limit refuses) it prints the decode time and, while N
// decodes run at once, the event loop's longest delay and the latency of a small file read (a
// thread-pool job, like the CAS's and dns.lookup's), each against the same figure with no decode.
import { readFile, writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import sharp from "sharp";
import { createImageInspector } from "../src/infra/image-inspector.js";
import { pngBomb } from "../test/helpers/images.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

const concurrency = arg("concurrency", 4);
const rounds = arg("rounds", 3);
/** INPUT_DECODE_CONCURRENCY: inspections at once (the rest wait); the default 2 unless given. */
const limit = arg("limit", 2);
const maxPixels = 25_000_000;
const inspector = createImageInspector({ maxPixels, concurrency: limit });

/** 5000×5000 (the pixel limit): a smooth PNG that fits a 1 MiB data: URI, and a noisy JPEG. */
async function inputs(): Promise<{ name: string; bytes: Buffer }[]> {
  const size = 5000;
  const gradient = Buffer.alloc(size * size);
  for (let y = 0; y < size; y++) gradient.fill(y % 256, y * size, (y + 1) * size);
  const png = await sharp(gradient, { raw: { width: size, height: size, channels: 1 } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  const jpeg = await sharp({
    create: {
      width: size,
      height: size,
      channels: 3,
      background: "#888",
      noise: { type: "gaussian", mean: 128, sigma: 40 },
    },
  })
    .jpeg({ quality: 70 })
    .toBuffer();
  return [
    { name: `png ${size}×${size} (${(png.length / 1e6).toFixed(2)} MB)`, bytes: png },
    { name: `jpeg ${size}×${size} (${(jpeg.length / 1e6).toFixed(2)} MB)`, bytes: jpeg },
    { name: "png bomb 30000×30000 (refused)", bytes: pngBomb(30_000, 30_000) },
  ];
}

/** Longest event-loop delay (ms) and median small-file-read latency (ms) while `work` runs. */
async function measure(work: () => Promise<unknown>, probeFile: string) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let done = false;
  const reads: number[] = [];
  const prober = (async () => {
    while (!done) {
      const t = performance.now();
      await readFile(probeFile);
      reads.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const t0 = performance.now();
  await work();
  const wall = performance.now() - t0;
  done = true;
  await prober;
  h.disable();
  reads.sort((a, b) => a - b);
  return {
    wall,
    loopMaxMs: h.max / 1e6,
    readP50: reads[Math.floor(reads.length / 2)] ?? 0,
    readMax: reads[reads.length - 1] ?? 0,
  };
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), "rg-bench-decode-"));
  const probe = join(dir, "probe");
  await writeFile(probe, Buffer.alloc(4096));
  try {
    const idle = await measure(() => new Promise((r) => setTimeout(r, 500)), probe);
    console.log(
      `idle: event loop max ${idle.loopMaxMs.toFixed(1)} ms, file read p50 ${idle.readP50.toFixed(2)} ms, max ${idle.readMax.toFixed(1)} ms`,
    );
    for (const input of await inputs()) {
      for (let r = 1; r <= rounds; r++) {
        const one = await measure(() => inspector.inspect(input.bytes), probe);
        const many = await measure(
          () => Promise.all(Array.from({ length: concurrency }, () => inspector.inspect(input.bytes))),
          probe,
        );
        const verdict = await inspector.inspect(input.bytes);
        console.log(
          `${input.name} round ${r}: ${verdict.ok ? "accepted" : `refused (${verdict.reason})`}; ` +
            `one decode ${one.wall.toFixed(0)} ms (loop max ${one.loopMaxMs.toFixed(1)} ms); ` +
            `${concurrency} at once ${many.wall.toFixed(0)} ms: loop max ${many.loopMaxMs.toFixed(1)} ms ` +
            `(${(many.loopMaxMs / Math.max(idle.loopMaxMs, 0.1)).toFixed(1)}× idle), ` +
            `file read p50 ${many.readP50.toFixed(2)} ms, max ${many.readMax.toFixed(0)} ms`,
        );
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
