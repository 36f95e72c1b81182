// Issue 7 finding 1: one 10 MiB `POST /queue` whose `lora` is an array of zeros froze the process
// for 15 s and grew it to 3.5 GB; a 10 MiB `[[[[…` blocked it 2.6 s. Both are now refused with a 400
// naming the bound as soon as the bytes that break it arrive, before the rest of the body is read.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSystem, type TestSystem } from "../helpers/system.js";

const LIMIT = 10 * 1024 * 1024;
const ROUTING = '{"modality":"image","family":"flux","model":"schnell","task":"t2i","prompt":"x",';

/** `head` + `unit` repeated to just under the body limit + `tail`. */
function fill(head: string, unit: string, tail: string): Buffer {
  const n = Math.floor((LIMIT - 64 - head.length - tail.length) / unit.length);
  return Buffer.from(head + unit.repeat(n) + tail);
}

const SHAPES = [
  {
    name: "a lora of zeros",
    body: fill(`${ROUTING}"lora":[`, "0,", "0]}"),
    field: "lora",
    constraint: "max_items",
  },
  { name: "nested arrays", body: fill("", "[", ""), field: "body", constraint: "max_depth" },
] as const;

interface Problem {
  error: string;
  details?: { field?: string; constraint?: string; limit?: number };
}

let sys: TestSystem;
let token: string;

beforeAll(async () => {
  sys = await startSystem({ worker: false });
  token = await sys.token("bounds");
});
afterAll(async () => {
  await sys?.close();
});

/**
 * Sends the headers of POST /queue declaring the whole `body` but only its first `sent` bytes, and
 * resolves with the answer the server gives without waiting for the rest.
 */
async function answerBeforeTheRest(
  body: Buffer,
  sent: number,
): Promise<{ status: number; problem: Problem }> {
  const u = new URL(sys.url);
  const socket = connect(Number(u.port), u.hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const head = [
    "POST /queue HTTP/1.1",
    `Host: ${u.host}`,
    `Authorization: Bearer ${token}`,
    "Content-Type: application/json",
    `Content-Length: ${body.length}`,
  ];
  socket.write(`${head.join("\r\n")}\r\n\r\n`);
  socket.write(body.subarray(0, sent));
  let got = Buffer.alloc(0);
  try {
    const text = await new Promise<string>((resolve, reject) => {
      socket.on("data", (d: Buffer) => {
        got = Buffer.concat([got, d]);
        const s = got.toString("utf8");
        const end = s.indexOf("\r\n\r\n");
        const length = /content-length: (\d+)/i.exec(s)?.[1];
        if (end >= 0 && length !== undefined && got.length >= end + 4 + Number(length)) resolve(s);
      });
      socket.on("error", reject);
      socket.on("close", () => resolve(got.toString("utf8")));
    });
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
    return { status, problem: JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as Problem };
  } finally {
    socket.destroy();
  }
}

describe("a 10 MiB body that breaks a structure bound", () => {
  it.each(SHAPES)("$name is answered 400 ($constraint) from its first 256 KiB", async (shape) => {
    const { status, problem } = await answerBeforeTheRest(shape.body, 256 * 1024);
    expect(status).toBe(400);
    expect(problem.error).toBe("validation_error");
    expect(problem.details).toMatchObject({ field: shape.field, constraint: shape.constraint });
  });

  it.each(SHAPES)(
    "$name sent whole: 400 naming the bound, /health answers, memory stays flat",
    async (shape) => {
      const peakBefore = process.resourceUsage().maxRSS;
      const [res, health] = await Promise.all([
        sys.call("/queue", { method: "POST", token, body: shape.body }),
        sys.call("/health"),
      ]);
      expect(res.status).toBe(400);
      expect(((await res.json()) as Problem).details).toMatchObject({
        field: shape.field,
        constraint: shape.constraint,
      });
      expect(health.status).toBe(200);
      expect((await sys.call("/health")).status).toBe(200);
      // The process (this test and the system in it) grew by less than 256 MiB at its peak; the
      // lora body took 3.5 GB before.
      const grewKiB = process.resourceUsage().maxRSS - peakBefore;
      expect(grewKiB).toBeLessThan(256 * 1024);
    },
  );
});
