// Deterministic procedural pictures for the simulated backend: a scene derived from SHA-256 of the
// prompt and seed, painted into raw RGB with integer-exact arithmetic (no trig, no fonts).
import { createHash } from "node:crypto";

/** An sRGB colour, each channel 0–255. */
export type Rgb = readonly [number, number, number];

/** One disc (or ring) of the scene; positions are fractions of width/height, radius of the shorter side. */
export interface SceneCircle {
  readonly cx: number;
  readonly cy: number;
  readonly r: number;
  readonly color: Rgb;
  readonly alpha: number;
  readonly ring: boolean;
  /** Animation: amplitude (fraction), frequency (cycles per second) and phase per axis. */
  readonly ax: number;
  readonly ay: number;
  readonly fx: number;
  readonly fy: number;
  readonly px: number;
  readonly py: number;
}

/** Everything needed to paint a picture; pure data derived from (prompt, seed, variant). */
export interface Scene {
  readonly from: Rgb;
  readonly to: Rgb;
  /** Gradient direction (not necessarily unit length; only its ratio matters). */
  readonly gx: number;
  readonly gy: number;
  readonly stripe: {
    readonly nx: number;
    readonly ny: number;
    /** Stripe period as a fraction of the shorter side. */
    readonly period: number;
    readonly duty: number;
    readonly color: Rgb;
    readonly alpha: number;
    /** Periods per second the stripes drift in a video. */
    readonly speed: number;
  };
  readonly circles: readonly SceneCircle[];
  readonly glyph: {
    /** GLYPH_CELLS × GLYPH_CELLS cells, 1 = ink; left/right mirrored like an identicon. */
    readonly bits: Uint8Array;
    readonly x: number;
    readonly y: number;
    /** Side of the glyph box as a fraction of the shorter side. */
    readonly size: number;
    readonly ink: Rgb;
    readonly plate: Rgb;
  };
}

/** Cells per side of the blocky prompt glyph. */
const GLYPH_CELLS = 7;

/** Domain separation for the scene hash; bump to change every picture on purpose. */
const SCENE_DOMAIN = "render-sim/scene/v1";

/** SHA-256 of the prompt and seed (and variant, when given) as raw bytes. */
function sceneDigest(prompt: string, seed: number, variant?: number): Uint8Array {
  const h = createHash("sha256").update(SCENE_DOMAIN).update("\0").update(String(seed)).update("\0");
  h.update(prompt, "utf8");
  if (variant !== undefined) h.update(`\0variant=${variant}`);
  return new Uint8Array(h.digest());
}

/** sfc32, seeded from the first 16 bytes of a digest; returns floats in [0, 1). */
function rngFrom(digest: Uint8Array): () => number {
  const view = new DataView(digest.buffer, digest.byteOffset, digest.byteLength);
  let a = view.getUint32(0);
  let b = view.getUint32(4);
  let c = view.getUint32(8);
  let d = view.getUint32(12);
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

/** HSV (all in [0, 1]) to RGB bytes, arithmetic only. */
function hsv(h: number, s: number, v: number): Rgb {
  const hh = (h - Math.floor(h)) * 6;
  const i = Math.floor(hh);
  const f = hh - i;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  const pick: Record<number, [number, number, number]> = {
    0: [v, t, p],
    1: [q, v, p],
    2: [p, v, t],
    3: [p, q, v],
    4: [t, p, v],
    5: [v, p, q],
  };
  const [r, g, b] = pick[i] ?? [v, t, p];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

/**
 * The scene of a picture. The palette and the glyph depend on (prompt, seed) only, so the variants
 * of one job share a look; the composition (gradient, stripes, circles) also depends on the variant.
 */
export function sceneOf(prompt: string, seed: number, variant = 0): Scene {
  const base = rngFrom(sceneDigest(prompt, seed));
  const baseHue = base();
  const hueOf = (k: number): number => baseHue + k * (0.18 + base() * 0.12);
  const palette: Rgb[] = [
    hsv(hueOf(0), 0.55 + base() * 0.35, 0.25 + base() * 0.3),
    hsv(hueOf(1), 0.45 + base() * 0.4, 0.7 + base() * 0.3),
    hsv(hueOf(2), 0.6 + base() * 0.4, 0.85 + base() * 0.15),
    hsv(hueOf(3), 0.5 + base() * 0.5, 0.6 + base() * 0.4),
    hsv(hueOf(2.5), 0.7 + base() * 0.3, 0.9 + base() * 0.1),
  ];
  const glyphDigest = sceneDigest(`glyph:${prompt}`, seed);
  const bits = new Uint8Array(GLYPH_CELLS * GLYPH_CELLS);
  const half = Math.ceil(GLYPH_CELLS / 2);
  for (let row = 0; row < GLYPH_CELLS; row++) {
    for (let col = 0; col < half; col++) {
      const bit = row * half + col;
      const on = ((glyphDigest[bit >> 3] ?? 0) >> (bit & 7)) & 1;
      bits[row * GLYPH_CELLS + col] = on;
      bits[row * GLYPH_CELLS + (GLYPH_CELLS - 1 - col)] = on;
    }
  }
  const glyphSize = 0.28 + base() * 0.12;
  const glyph = {
    bits,
    x: 0.06 + base() * (0.88 - glyphSize),
    y: 0.06 + base() * (0.88 - glyphSize),
    size: glyphSize,
    ink: [255 - (palette[0]?.[0] ?? 0), 255 - (palette[0]?.[1] ?? 0), 255 - (palette[0]?.[2] ?? 0)] as Rgb,
    plate: palette[0] ?? [0, 0, 0],
  };

  const rnd = rngFrom(sceneDigest(prompt, seed, variant));
  const circles: SceneCircle[] = [];
  const n = 3 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    circles.push({
      cx: 0.1 + rnd() * 0.8,
      cy: 0.1 + rnd() * 0.8,
      r: 0.06 + rnd() * 0.22,
      color: palette[1 + Math.floor(rnd() * 4)] ?? [255, 255, 255],
      alpha: 0.55 + rnd() * 0.4,
      ring: rnd() < 0.35,
      ax: 0.04 + rnd() * 0.12,
      ay: 0.04 + rnd() * 0.12,
      fx: 0.25 + rnd() * 0.5,
      fy: 0.25 + rnd() * 0.5,
      px: rnd(),
      py: rnd(),
    });
  }
  return {
    from: palette[0] ?? [0, 0, 0],
    to: palette[1] ?? [255, 255, 255],
    gx: rnd() * 2 - 1,
    gy: rnd() * 2 - 1 || 0.5,
    stripe: {
      nx: rnd() * 2 - 1,
      ny: rnd() * 2 - 1 || 0.5,
      period: 0.04 + rnd() * 0.12,
      duty: 0.2 + rnd() * 0.4,
      color: palette[2 + Math.floor(rnd() * 3)] ?? [255, 255, 255],
      alpha: 0.18 + rnd() * 0.2,
      speed: 0.5 + rnd(),
    },
    circles,
    glyph,
  };
}

/** A smooth periodic wave in [-1, 1] with period 1, from arithmetic only (deterministic everywhere). */
function wave(x: number): number {
  const f = x - Math.floor(x);
  const tri = f < 0.5 ? 4 * f - 1 : 3 - 4 * f;
  return tri * (1.5 - 0.5 * tri * tri);
}

/** Options of {@link paintScene}. */
export interface PaintOptions {
  /** Seconds into a video; moves the circles and the stripes. Default 0. */
  readonly t?: number;
  /** When set, draws a progress bar of this share (0–1) along the bottom edge (video frames). */
  readonly bar?: number;
}

/**
 * Paints the scene into packed RGB bytes (width × height × 3), row-major. Same inputs, same bytes.
 * @throws RangeError when width or height is not a positive integer.
 */
export function paintScene(scene: Scene, width: number, height: number, opts: PaintOptions = {}): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`bad picture size ${width}x${height}`);
  }
  const t = opts.t ?? 0;
  const out = new Uint8Array(width * height * 3);
  const minSide = Math.min(width, height);

  // Background: linear gradient along (gx, gy) over the normalised square, plus drifting stripes.
  const glen = Math.abs(scene.gx) + Math.abs(scene.gy);
  const gxn = scene.gx / glen / width;
  const gyn = scene.gy / glen / height;
  const st = scene.stripe;
  const slen = Math.sqrt(st.nx * st.nx + st.ny * st.ny);
  const sx = st.nx / slen / (st.period * minSide);
  const sy = st.ny / slen / (st.period * minSide);
  const phase = t * st.speed;
  // Two 256-level lookup tables (plain and under a stripe) keep the per-pixel work to a compare.
  const lut = new Uint8Array(2 * 256 * 3);
  for (let level = 0; level < 256; level++) {
    const k = level / 255;
    for (let ch = 0; ch < 3; ch++) {
      const v = (scene.from[ch] ?? 0) + ((scene.to[ch] ?? 0) - (scene.from[ch] ?? 0)) * k;
      lut[level * 3 + ch] = v + 0.5;
      lut[768 + level * 3 + ch] = v + ((st.color[ch] ?? 0) - v) * st.alpha + 0.5;
    }
  }
  const duty = st.duty;
  for (let y = 0; y < height; y++) {
    let g = (0.5 + (0 - width / 2) * gxn + (y - height / 2) * gyn) * 255;
    let s = y * sy + phase;
    let i = y * width * 3;
    for (let x = 0; x < width; x++) {
      const level = g <= 0 ? 0 : g >= 255 ? 255 : (g + 0.5) | 0;
      const j = (s - Math.floor(s) < duty ? 768 : 0) + level * 3;
      out[i] = lut[j] as number;
      out[i + 1] = lut[j + 1] as number;
      out[i + 2] = lut[j + 2] as number;
      i += 3;
      g += gxn * 255;
      s += sx;
    }
  }

  for (const c of scene.circles) {
    const cx = (c.cx + c.ax * wave(t * c.fx + c.px)) * width;
    const cy = (c.cy + c.ay * wave(t * c.fy + c.py)) * height;
    const rad = c.r * minSide;
    const inner = c.ring ? rad * 0.72 : -1;
    const [cr, cg, cb] = c.color;
    const yStart = Math.max(0, Math.ceil(cy - rad));
    const yEnd = Math.min(height - 1, Math.floor(cy + rad));
    for (let y = yStart; y <= yEnd; y++) {
      const dy = y - cy;
      const halfChord = Math.sqrt(Math.max(0, rad * rad - dy * dy));
      const innerChord = inner > 0 && Math.abs(dy) < inner ? Math.sqrt(inner * inner - dy * dy) : -1;
      const x0 = Math.max(0, Math.ceil(cx - halfChord));
      const x1 = Math.min(width - 1, Math.floor(cx + halfChord));
      let i = (y * width + x0) * 3;
      const a = c.alpha;
      for (let x = x0; x <= x1; x++, i += 3) {
        if (innerChord > 0 && Math.abs(x - cx) < innerChord) continue;
        const r = out[i] as number;
        const g = out[i + 1] as number;
        const b = out[i + 2] as number;
        out[i] = r + (cr - r) * a + 0.5;
        out[i + 1] = g + (cg - g) * a + 0.5;
        out[i + 2] = b + (cb - b) * a + 0.5;
      }
    }
  }

  // The glyph: a plate with a GLYPH_CELLS² block pattern of the prompt hash, drawn opaque.
  const gl = scene.glyph;
  const cell = Math.max(1, Math.floor((gl.size * minSide) / (GLYPH_CELLS + 2)));
  const box = cell * (GLYPH_CELLS + 2);
  const bx = Math.min(Math.max(0, Math.round(gl.x * width)), Math.max(0, width - box));
  const by = Math.min(Math.max(0, Math.round(gl.y * height)), Math.max(0, height - box));
  for (let y = by; y < Math.min(height, by + box); y++) {
    const row = Math.floor((y - by) / cell) - 1;
    let i = (y * width + bx) * 3;
    for (let x = bx; x < Math.min(width, bx + box); x++, i += 3) {
      const col = Math.floor((x - bx) / cell) - 1;
      const on =
        row >= 0 &&
        row < GLYPH_CELLS &&
        col >= 0 &&
        col < GLYPH_CELLS &&
        gl.bits[row * GLYPH_CELLS + col] === 1;
      const [r, g, b] = on ? gl.ink : gl.plate;
      out[i] = r;
      out[i + 1] = g;
      out[i + 2] = b;
    }
  }

  if (opts.bar !== undefined) {
    const barH = Math.max(2, Math.round(minSide / 48));
    const barW = Math.round(Math.min(1, Math.max(0, opts.bar)) * width);
    for (let y = height - barH; y < height; y++) {
      let i = y * width * 3;
      for (let x = 0; x < width; x++, i += 3) {
        const v = x < barW ? 255 : 24;
        out[i] = v;
        out[i + 1] = v;
        out[i + 2] = v;
      }
    }
  }
  return out;
}
