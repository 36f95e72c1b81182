// The simulator's videos: real H.264 MP4s (checked box by box and decoded with ffmpeg), over HTTP too.
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_SIM_CONFIG } from "../../src/sim/config.js";
import { ffmpegPath, renderVideo } from "../../src/sim/media.js";
import { startSimServer, type SimServer } from "../../src/sim/server.js";

/** MP4 boxes: type, payload start and end, for one level of `bytes[start, end)`. */
function boxes(
  bytes: Uint8Array,
  start = 0,
  end = bytes.length,
): { type: string; start: number; end: number }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: { type: string; start: number; end: number }[] = [];
  let at = start;
  while (at + 8 <= end) {
    let size = view.getUint32(at);
    const type = Buffer.from(bytes.subarray(at + 4, at + 8)).toString("latin1");
    let header = 8;
    if (size === 1) {
      size = Number(view.getBigUint64(at + 8));
      header = 16;
    } else if (size === 0) size = end - at;
    expect(size).toBeGreaterThanOrEqual(header);
    out.push({ type, start: at + header, end: at + size });
    at += size;
  }
  expect(at).toBe(end);
  return out;
}

function child(bytes: Uint8Array, parent: { start: number; end: number }, type: string) {
  const found = boxes(bytes, parent.start, parent.end).find((b) => b.type === type);
  if (!found) throw new Error(`no ${type} box`);
  return found;
}

/** What an MP4 says about its video track: codec, size, duration and sample count. */
function inspectMp4(bytes: Uint8Array): {
  top: string[];
  codec: string;
  width: number;
  height: number;
  durationS: number;
  samples: number;
} {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const top = boxes(bytes);
  const moov = top.find((b) => b.type === "moov");
  if (!moov) throw new Error("no moov");
  const trak = boxes(bytes, moov.start, moov.end).find((t) => {
    if (t.type !== "trak") return false;
    const hdlr = child(bytes, child(bytes, t, "mdia"), "hdlr");
    return Buffer.from(bytes.subarray(hdlr.start + 8, hdlr.start + 12)).toString("latin1") === "vide";
  });
  if (!trak) throw new Error("no video track");
  const mdia = child(bytes, trak, "mdia");
  const mdhd = child(bytes, mdia, "mdhd");
  const v1 = bytes[mdhd.start] === 1;
  const timescale = view.getUint32(mdhd.start + (v1 ? 20 : 12));
  const duration = v1 ? Number(view.getBigUint64(mdhd.start + 24)) : view.getUint32(mdhd.start + 16);
  const stbl = child(bytes, child(bytes, mdia, "minf"), "stbl");
  const stsd = child(bytes, stbl, "stsd");
  const entry = boxes(bytes, stsd.start + 8, stsd.end)[0]!;
  const stsz = child(bytes, stbl, "stsz");
  return {
    top: top.map((b) => b.type),
    codec: entry.type,
    // VisualSampleEntry: 6 reserved, 2 data_reference_index, 16 pre-defined/reserved, then width, height.
    width: view.getUint16(entry.start + 24),
    height: view.getUint16(entry.start + 26),
    durationS: duration / timescale,
    samples: view.getUint32(stsz.start + 8),
  };
}

/** Decodes every frame with the ffmpeg binary; resolves the raw RGB bytes. */
function decodeRgb(mp4: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn(ffmpegPath(), ["-v", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    let err = "";
    p.stdout.on("data", (c: Buffer) => chunks.push(c));
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("error", reject);
    p.on("close", (code) =>
      code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`ffmpeg ${code}: ${err}`)),
    );
    p.stdin.on("error", () => undefined);
    p.stdin.end(mp4);
  });
}

describe("sim media: video", () => {
  it("renders a 720p H.264 MP4 of 2 s at 8 fps with moov before mdat", async () => {
    const mp4 = await renderVideo({
      prompt: "a drone shot",
      seed: 11,
      width: 1280,
      height: 720,
      durationS: 2,
    });
    const info = inspectMp4(mp4);
    expect(info.top[0]).toBe("ftyp");
    expect(info.top.indexOf("moov")).toBeLessThan(info.top.indexOf("mdat"));
    expect(info).toMatchObject({ codec: "avc1", width: 1280, height: 720, samples: 16 });
    expect(info.durationS).toBeCloseTo(2, 1);
  });

  it("decodes to the right number of frames of the right size, and the frames move", async () => {
    const mp4 = await renderVideo({
      prompt: "waves",
      seed: 2,
      width: 480,
      height: 832,
      durationS: 1,
      fps: 6,
    });
    expect(inspectMp4(mp4)).toMatchObject({ codec: "avc1", width: 480, height: 832, samples: 6 });
    const rgb = await decodeRgb(mp4);
    const frame = 480 * 832 * 3;
    expect(rgb.length).toBe(6 * frame);
    let diff = 0;
    for (let i = 0; i < frame; i++) diff += Math.abs(rgb[i]! - rgb[5 * frame + i]!);
    expect(diff / frame).toBeGreaterThan(3);
  });

  it("is deterministic and differs between prompts", async () => {
    const o = { prompt: "clouds", seed: 4, width: 320, height: 240, durationS: 0.5, fps: 4 };
    const [a, b, c] = await Promise.all([
      renderVideo(o),
      renderVideo(o),
      renderVideo({ ...o, prompt: "rain" }),
    ]);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
  });

  it("stops ffmpeg when aborted and rejects with the reason", async () => {
    const ac = new AbortController();
    const o = {
      prompt: "long",
      seed: 1,
      width: 1280,
      height: 720,
      durationS: 10,
      fps: 30,
      signal: ac.signal,
    };
    const p = renderVideo(o);
    setTimeout(() => ac.abort(new Error("stop now")), 50);
    const t = performance.now();
    await expect(p).rejects.toThrow("stop now");
    expect(performance.now() - t).toBeLessThan(2000);
  });

  it("refuses odd sides, which H.264 4:2:0 cannot encode", async () => {
    await expect(
      renderVideo({ prompt: "x", seed: 1, width: 641, height: 480, durationS: 1 }),
    ).rejects.toThrow(RangeError);
  });

  it("finds the bundled ffmpeg binary", () => {
    expect(ffmpegPath()).toMatch(/ffmpeg$/);
  });
});

interface VideoAnswer {
  outputs: { data: string[] }[];
}

describe("sim server: video over HTTP", () => {
  let sim: SimServer;
  beforeAll(async () => {
    sim = await startSimServer({ config: { ...DEFAULT_SIM_CONFIG, stepMs: 5 } });
  });
  afterAll(async () => {
    await sim.close();
  });

  const call = async (
    parameters: Record<string, unknown>,
  ): Promise<{ status: number; json: VideoAnswer }> => {
    const res = await fetch(`${sim.url}/v2/models/wan-default/infer`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "j_video" },
      body: JSON.stringify({
        id: "j_video",
        parameters: { modality: "video", task: "t2v", seed: 9, steps: 4, ...parameters },
        inputs: [{ name: "prompt", datatype: "BYTES", shape: [1], data: ["a slow pan over hills"] }],
      }),
    });
    return { status: res.status, json: (await res.json()) as VideoAnswer };
  };

  it("answers one video/mp4 output with an avc1 track of the requested size, 2 s at 8 fps by default", async () => {
    const { status, json } = await call({ width: 832, height: 480 });
    expect(status).toBe(200);
    expect(json).toMatchObject({
      id: "j_video",
      model_name: "wan-default",
      outputs: [{ name: "output", datatype: "BYTES", shape: [1], parameters: { content_type: "video/mp4" } }],
      parameters: { seed: 9, content_type: "video/mp4" },
    });
    const info = inspectMp4(Buffer.from(json.outputs[0]!.data[0]!, "base64"));
    expect(info).toMatchObject({ codec: "avc1", width: 832, height: 480, samples: 16 });
    expect(info.durationS).toBeCloseTo(2, 1);
  });

  it("honours duration and fps, and i2v with an input image", async () => {
    const res = await fetch(`${sim.url}/v2/models/wan-default/infer`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        id: "j_i2v",
        parameters: {
          modality: "video",
          task: "i2v",
          seed: 1,
          steps: 2,
          width: 480,
          height: 832,
          duration: 1.5,
          fps: 4,
        },
        inputs: [
          { name: "prompt", datatype: "BYTES", shape: [1], data: ["make it move"] },
          {
            name: "request",
            datatype: "BYTES",
            shape: [1],
            data: [JSON.stringify({ image: "sha256-" + "a".repeat(64) })],
          },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const json = (await res.json()) as VideoAnswer;
    const info = inspectMp4(Buffer.from(json.outputs[0]!.data[0]!, "base64"));
    expect(info).toMatchObject({ codec: "avc1", width: 480, height: 832, samples: 6 });
    expect(info.durationS).toBeCloseTo(1.5, 1);
  });

  it("refuses a video with an image format or several outputs", async () => {
    expect((await call({ width: 640, height: 640, output_format: "png" })).status).toBe(400);
    expect((await call({ width: 640, height: 640, count: 2 })).status).toBe(400);
  });
});
