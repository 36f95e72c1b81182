// The streaming client of a backend (generate_stream, server-sent events) against a loopback server
// that writes its answer in awkward pieces: a byte order mark first, a progress frame, and a final
// frame split inside a multi-byte character and across its blank line.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKserveClient } from "../../src/workers/backends/kserve-client.js";

const png = Buffer.from("\x89PNG final bytes");
const progress = `data: ${JSON.stringify({ parameters: { step: 1, steps: 2, progress: 0.5 } })}\n\n`;
// "é" (two bytes in UTF-8) in the content type puts a character across two writes
const final = `data: ${JSON.stringify({
  outputs: [{ name: "output", data: [png.toString("base64")] }],
  parameters: { final: true, content_type: "image/pngé", seed: 3, gpu_ms: 9 },
})}\n\n`;

let server: Server;
let url = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/event-stream" });
    const bytes = Buffer.concat([
      Buffer.from([0xef, 0xbb]),
      Buffer.from([0xbf]),
      Buffer.from(progress + final),
    ]);
    const split = bytes.indexOf(Buffer.from("é")) + 1;
    // BOM in two writes, then everything up to the middle of "é", then the rest in two more
    const pieces = [
      bytes.subarray(0, 2),
      bytes.subarray(2, split),
      bytes.subarray(split, -1),
      bytes.subarray(-1),
    ];
    let i = 0;
    const next = () => {
      if (i < pieces.length) res.write(pieces[i++], () => setTimeout(next, 5));
      else res.end();
    };
    next();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe("the streaming backend client", () => {
  it("reads frames split anywhere, after a byte order mark", async () => {
    const client = createKserveClient(url, { connections: 1 });
    const steps: number[] = [];
    try {
      const result = await client.generateStream(
        "flux-schnell",
        { id: "j_1", parameters: {}, inputs: [] },
        { signal: new AbortController().signal, onProgress: (p) => steps.push(p.step) },
      );
      expect(steps).toEqual([1]);
      expect(result.contentType).toBe("image/pngé");
      expect(Buffer.from(result.outputs[0]!)).toEqual(png);
      expect(result).toMatchObject({ seed: 3, gpuMs: 9 });
    } finally {
      await client.close();
    }
  });
});
