// Customers read a fixed sentence per error code, never what a GPU backend or an exception said:
// a backend (a fake at the GPU boundary) answers 422 and 500 with bodies full of paths, hosts and
// ports; the job's `error`, its SSE `error` event and the sync route's problem document carry only
// the fixed texts of core/job-errors.ts, while an admin's GET /jobs/{id} shows the backend's words
// in the attempt log.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JOB_ERROR_MESSAGE } from "../../src/core/job-errors.js";
import {
  FLUX_SCHNELL_512,
  queueJob,
  readSse,
  startSystem,
  waitFor,
  type TestSystem,
} from "../helpers/system.js";

/** What the leaky backend puts in its error answers: nothing of it may reach a customer. */
const SECRETS = [
  "/srv/models/flux/weights.safetensors",
  "10.20.30.40:8000",
  "gpu-node-7.internal",
  "Traceback",
];

let backend: Server;
let sys: TestSystem;
let customer: string;
let admin: string;

beforeAll(async () => {
  backend = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" }).end('{"ready":true}');
        return;
      }
      const reject = body.includes("please reject");
      res
        .writeHead(reject ? 422 : 500, { "content-type": "text/plain" })
        .end(
          reject
            ? `invalid tensor: cannot read ${SECRETS[0]} from ${SECRETS[1]}`
            : `${SECRETS[3]} (most recent call last): worker ${SECRETS[2]} at ${SECRETS[1]} lost ${SECRETS[0]}`,
        );
    });
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  sys = await startSystem({
    env: { JOB_ATTEMPTS: "1" },
    backends: () => [
      {
        id: "leaky",
        url,
        protocol: "kserve-v2",
        engine: "nunchaku",
        capacity: 4,
        models: ["*"],
        streaming: false,
        timeout_ms: 10_000,
        timeouts: {},
      },
    ],
  });
  customer = await sys.token("vocab-customer");
  admin = await sys.token("ops", { admin: true });
});
afterAll(async () => {
  await sys?.close();
  await new Promise((r) => backend?.close(r));
});

function expectNoSecrets(text: string): void {
  for (const s of SECRETS) expect(text, `"${s}" leaked`).not.toContain(s);
}

async function finishedJob(id: string, token: string) {
  return waitFor(async () => {
    const res = await sys.call(`/jobs/${id}?redirect=false`, { token });
    const text = await res.text();
    const job = JSON.parse(text) as { status: string };
    return job.status === "error" ? { text, job: JSON.parse(text) as Record<string, unknown> } : undefined;
  });
}

describe("customer-visible error messages", () => {
  it.each([
    ["422 (rejected request)", "please reject", "invalid_request", JOB_ERROR_MESSAGE.invalid_request, false],
    [
      "500 (failed attempt)",
      "please fail",
      "backend_error",
      `${JOB_ERROR_MESSAGE.backend_error} (after 1 attempts)`,
      true,
    ],
  ])(
    "a backend %s gives the job a fixed message; admins see the backend's words",
    async (_, prompt, code, message, retriable) => {
      const id = await queueJob(sys, customer, { ...FLUX_SCHNELL_512, prompt });
      const { text, job } = await finishedJob(id, customer);
      expect(job.error).toEqual({ code, message, retriable });
      expectNoSecrets(text);

      const events = await sys.call(`/jobs/${id}/events`, { token: customer });
      const streamed = await readSse(events, (e) => e.event === "error");
      expect(JSON.parse(streamed.at(-1)!.data)).toEqual({ code, message, retriable });
      expectNoSecrets(JSON.stringify(streamed));

      const asAdmin = (await (await sys.call(`/jobs/${id}?redirect=false`, { token: admin })).json()) as {
        error: unknown;
        attempt_log: { outcome: string; error?: string; detail?: string }[];
      };
      expect(asAdmin.error).toEqual(job.error);
      expect(asAdmin.attempt_log).toHaveLength(1);
      expect(asAdmin.attempt_log[0]).toMatchObject({ error: code });
      expect(asAdmin.attempt_log[0]!.detail).toContain(SECRETS[1]);
      expect(asAdmin.attempt_log[0]!.detail).toContain(SECRETS[0]);
      // The customer's attempt log has neither.
      expect((job.attempt_log as Record<string, unknown>[])[0]).not.toHaveProperty("detail");
    },
  );

  it("the sync route's problem documents carry only the fixed texts", async () => {
    for (const [prompt, status, code] of [
      ["please reject", 400, "invalid_request"],
      ["please fail", 503, "backend_error"],
    ] as const) {
      const res = await sys.call("/image/flux/schnell/t2i?format=512", {
        method: "POST",
        token: customer,
        body: JSON.stringify({ prompt }),
      });
      const text = await res.text();
      expect(res.status, text).toBe(status);
      expectNoSecrets(text);
      const problem = JSON.parse(text) as { detail: string; details: { code: string } };
      expect(problem.details.code).toBe(code);
      expect(problem.detail).toContain(JOB_ERROR_MESSAGE[code]);
    }
  });
});
