// Real media bytes for the simulated backend: PNG/WebP/JPEG through sharp, H.264 MP4 through ffmpeg.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { paintScene, sceneOf } from "./pattern.js";

/** Options of {@link renderImage}. */
export interface ImageOptions {
  readonly prompt: string;
  readonly seed: number;
  readonly width: number;
  readonly height: number;
  readonly format: "png" | "webp";
  /** Which output of a multi-output job (0-based); each variant is a different picture. Default 0. */
  readonly variant?: number;
}

/** Options of {@link renderVideo}. */
export interface VideoOptions {
  readonly prompt: string;
  readonly seed: number;
  /** Even number of pixels (H.264 4:2:0 needs even sides). */
  readonly width: number;
  readonly height: number;
  readonly durationS: number;
  /** Frames per second, default 8. */
  readonly fps?: number;
  /** Aborting kills ffmpeg and rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/** Content type of each output format. */
export const CONTENT_TYPE = Object.freeze({ png: "image/png", webp: "image/webp", mp4: "video/mp4" });

function assertSize(width: number, height: number, even: boolean): void {
  const ok = (v: number): boolean => Number.isInteger(v) && v > 0 && v <= 8192 && (!even || v % 2 === 0);
  if (!ok(width) || !ok(height)) {
    throw new RangeError(`bad size ${width}x${height}${even ? " (video sides must be even)" : ""}`);
  }
}

/**
 * A deterministic picture of exactly width × height: same options, same bytes; a different prompt, seed
 * or variant gives a visibly different picture. PNG uses zlib level 1 (speed over size).
 * @throws RangeError on a bad size.
 */
export async function renderImage(o: ImageOptions): Promise<Uint8Array> {
  assertSize(o.width, o.height, false);
  const pixels = paintScene(sceneOf(o.prompt, o.seed, o.variant ?? 0), o.width, o.height);
  const img = sharp(pixels, { raw: { width: o.width, height: o.height, channels: 3 } });
  const out =
    o.format === "webp"
      ? await img.webp({ quality: 80, effort: 0 }).toBuffer()
      : await img.png({ compressionLevel: 1, adaptiveFiltering: false }).toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Options of {@link renderPreview}. */
export interface PreviewOptions {
  readonly prompt: string;
  readonly seed: number;
  readonly width: number;
  readonly height: number;
  /** 0–1: how far the "denoising" is; the preview fades from grey noise towards the final picture. */
  readonly progress: number;
  /** Preview width in pixels, default 64; the height keeps the aspect ratio. */
  readonly previewWidth?: number;
}

/** A tiny JPEG of the picture as it "develops", as a `data:image/jpeg;base64,` URI. */
export async function renderPreview(o: PreviewOptions): Promise<string> {
  const w = o.previewWidth ?? 64;
  const h = Math.max(1, Math.round((w * o.height) / o.width));
  const px = paintScene(sceneOf(o.prompt, o.seed, 0), w, h);
  const k = Math.min(1, Math.max(0, o.progress));
  // Deterministic "noise" so that early previews look like a diffusion model's early steps.
  let n = 0x9e3779b9 ^ o.seed;
  for (let i = 0; i < px.length; i++) {
    n = (Math.imul(n, 1664525) + 1013904223) | 0;
    const noise = 128 + ((n >>> 24) - 128) * 0.5;
    px[i] = noise + ((px[i] ?? 0) - noise) * k + 0.5;
  }
  const jpeg = await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .jpeg({ quality: 60 })
    .toBuffer();
  return `data:image/jpeg;base64,${jpeg.toString("base64")}`;
}

/** The ffmpeg binary of `@ffmpeg-installer/ffmpeg`, else `ffmpeg` from PATH. */
export function ffmpegPath(): string {
  try {
    const mod: unknown = createRequire(import.meta.url)("@ffmpeg-installer/ffmpeg");
    if (typeof mod === "object" && mod !== null && "path" in mod && typeof mod.path === "string")
      return mod.path;
  } catch {
    // Unsupported platform or package missing: fall through to PATH.
  }
  return "ffmpeg";
}

/** How much of ffmpeg's stderr an error message keeps. */
const STDERR_KEEP = 4096;

/**
 * A deterministic H.264 (yuv420p) MP4 of exactly width × height, `round(durationS × fps)` frames of the
 * prompt's scene in motion, with a progress bar. Frames are piped raw to ffmpeg, which writes a temp
 * file (faststart needs a seekable output) that is read and deleted.
 * @throws RangeError on a bad size or duration; Error naming ffmpeg's exit and stderr when it fails;
 *   the signal's reason when aborted. ffmpeg is always killed and reaped before this settles.
 */
export async function renderVideo(o: VideoOptions): Promise<Uint8Array> {
  assertSize(o.width, o.height, true);
  const fps = o.fps ?? 8;
  if (!Number.isInteger(fps) || fps < 1 || fps > 120) throw new RangeError(`bad fps ${fps}`);
  if (!Number.isFinite(o.durationS) || o.durationS <= 0 || o.durationS > 600) {
    throw new RangeError(`bad duration ${o.durationS}`);
  }
  o.signal?.throwIfAborted();
  const frames = Math.max(1, Math.round(o.durationS * fps));
  const scene = sceneOf(o.prompt, o.seed, 0);
  const dir = await mkdtemp(join(tmpdir(), "render-sim-"));
  const file = join(dir, "out.mp4");
  const args = [
    ...["-hide_banner", "-loglevel", "error", "-nostdin"],
    ...["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${o.width}x${o.height}`, "-r", String(fps), "-i", "-"],
    ...["-an", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    ...["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-movflags", "+faststart"],
    ...["-y", file],
  ];
  const child = spawn(ffmpegPath(), args, { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    if (stderr.length < STDERR_KEEP) stderr += chunk.slice(0, STDERR_KEEP - stderr.length);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.once("error", (error) => resolve({ code: null, signal: null, error }));
      child.once("close", (code, signal) => resolve({ code, signal }));
    },
  );
  // EPIPE when ffmpeg dies early surfaces through the exit status; keep it from being unhandled.
  child.stdin.on("error", () => undefined);
  let ended = false;
  const abort = new AbortController();
  const onAbort = (): void => abort.abort(o.signal?.reason);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  void exited.then(() => {
    ended = true;
    abort.abort(new Error("ffmpeg exited"));
  });
  try {
    for (let f = 0; f < frames && !abort.signal.aborted; f++) {
      const frame = paintScene(scene, o.width, o.height, {
        t: f / fps,
        bar: frames > 1 ? f / (frames - 1) : 1,
      });
      if (!child.stdin.write(frame)) {
        await once(child.stdin, "drain", { signal: abort.signal }).catch(() => undefined);
      }
    }
    o.signal?.throwIfAborted();
    child.stdin.end();
    const status = await exited;
    o.signal?.throwIfAborted();
    if (status.error)
      throw new Error(`ffmpeg could not start: ${status.error.message}`, { cause: status.error });
    if (status.code !== 0) {
      throw new Error(
        `ffmpeg failed (${status.signal ?? `exit ${status.code}`}): ${stderr.trim() || "no output"}`,
      );
    }
    const bytes = await readFile(file);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
    if (!ended) {
      child.kill("SIGKILL");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  }
}
