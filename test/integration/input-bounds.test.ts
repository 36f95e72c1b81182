// Headers, query values and path segments the routes read are bounded too (issue 7, finding 1): an
// over-long or malformed one is a 400 naming it with its constraint, never echoed whole.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLUX_SCHNELL_512, startSystem, type TestSystem } from "../helpers/system.js";

interface Problem {
  error: string;
  detail: string;
  details?: { field?: string; constraint?: string };
}

let sys: TestSystem;
let token: string;

beforeAll(async () => {
  sys = await startSystem({ worker: false, env: { SYNC_BUDGET_MS: "200" } });
  token = await sys.token("input-bounds");
});
afterAll(async () => {
  await sys?.close();
});

async function problemOf(res: Response): Promise<Problem> {
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  return (await res.json()) as Problem;
}

const job = JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "a lighthouse" });
const syncBody = JSON.stringify({ prompt: "a lighthouse" });

describe("headers", () => {
  it.each([
    ["Idempotency-Key", "/queue", job, "k".repeat(65)],
    ["Prefer", "/image/flux/schnell/t2i", syncBody, `wait=1, ${"x".repeat(2000)}`],
    ["Accept", "/image/flux/schnell/t2i", syncBody, `image/webp, ${"x/y, ".repeat(400)}`],
  ])("%s longer than its bound: 400 max_length naming the header", async (header, path, body, value) => {
    const res = await sys.call(path, { method: "POST", token, body, headers: { [header]: value } });
    expect(res.status).toBe(400);
    expect((await problemOf(res)).details).toEqual({ field: header, constraint: "max_length" });
  });

  it("an Idempotency-Key of 64 characters is still a key", async () => {
    const res = await sys.call("/queue", {
      method: "POST",
      token,
      body: job,
      headers: { "Idempotency-Key": "k".repeat(64) },
    });
    expect(res.status).toBe(202);
  });

  it("Accept longer than its bound on GET /jobs/{id}: 400", async () => {
    const id = (
      (await (await sys.call("/queue", { method: "POST", token, body: job })).json()) as { id: string }
    ).id;
    const res = await sys.call(`/jobs/${id}`, {
      token,
      headers: { accept: `application/json, ${"x/y, ".repeat(400)}` },
    });
    expect(res.status).toBe(400);
    expect((await problemOf(res)).details).toEqual({ field: "Accept", constraint: "max_length" });
  });
});

describe("query values", () => {
  it.each([
    ["?format=" + "f".repeat(40), "format", "max_length"],
    ["?backend=" + "b".repeat(70), "backend", "format"],
    ["?backend=not%20a%20backend", "backend", "format"],
  ])("POST /image/flux/schnell/t2i%s: 400 %s %s", async (query, field, constraint) => {
    const res = await sys.call(`/image/flux/schnell/t2i${query}`, { method: "POST", token, body: syncBody });
    expect(res.status).toBe(400);
    const problem = await problemOf(res);
    expect(problem.details).toEqual({ field, constraint });
    expect(problem.detail.length).toBeLessThan(200);
  });

  it("?redirect= takes true or false only", async () => {
    const id = (
      (await (await sys.call("/queue", { method: "POST", token, body: job })).json()) as { id: string }
    ).id;
    for (const ok of ["true", "false", ""])
      expect((await sys.call(`/jobs/${id}?redirect=${ok}`, { token })).status).toBe(200);
    const res = await sys.call(`/jobs/${id}?redirect=${"no".repeat(3000)}`, { token });
    expect(res.status).toBe(400);
    const problem = await problemOf(res);
    expect(problem.details).toEqual({ field: "redirect", constraint: "enum" });
    expect(problem.detail.length).toBeLessThan(200);
  });
});

describe("path segments", () => {
  it.each(["family", "model", "task"])(
    "a %s segment longer than 128 characters: 400 max_length",
    async (field) => {
      const parts: Record<string, string> = {
        family: "flux",
        model: "schnell",
        task: "t2i",
        [field]: "p".repeat(200),
      };
      const res = await sys.call(`/image/${parts.family}/${parts.model}/${parts.task}`, {
        method: "POST",
        token,
        body: syncBody,
      });
      expect(res.status).toBe(400);
      const problem = await problemOf(res);
      expect(problem.details).toEqual({ field, constraint: "max_length" });
      expect(problem.detail.length).toBeLessThan(200);
    },
  );

  it("a job id far longer than any is answered 404 without echoing it whole", async () => {
    for (const [method, path] of [
      ["GET", `/jobs/j_${"a".repeat(8000)}`],
      ["DELETE", `/jobs/j_${"a".repeat(8000)}`],
    ] as const) {
      const res = await sys.call(path, { method, token });
      expect(res.status).toBe(404);
      expect((await problemOf(res)).detail.length).toBeLessThan(200);
    }
  });
});

describe("echoes in answers", () => {
  it.each([
    ["an unknown path", "GET", `/${"p".repeat(8000)}`, {}, 404],
    ["a method the path lacks", "PUT", `/jobs/${"j".repeat(8000)}`, {}, 405],
    ["an unknown route of a known prefix", "POST", `/image/${"f".repeat(8000)}`, {}, 404],
    ["an object name that is no digest", "GET", `/objects/${"o".repeat(8000)}`, {}, 404],
    ["a content type other than JSON", "POST", "/queue", { "content-type": `text/${"x".repeat(8000)}` }, 415],
  ] as const)(
    "%s is answered without echoing kilobytes of it",
    async (_what, method, path, headers, status) => {
      const res = await sys.call(path, {
        method,
        token,
        headers,
        ...(method === "POST" ? { body: job } : {}),
      });
      expect(res.status).toBe(status);
      expect((await problemOf(res)).detail.length).toBeLessThan(200);
    },
  );
});

describe("strings stored in the job record", () => {
  // A lone surrogate (`"\ud800"` in JSON) is a JS string but no Unicode text: the job record's fields
  // go through Redis's cjson, which refuses it, and the request used to end in a 500.
  it.each([
    ["idempotency_key", { idempotency_key: "key-\ud800" }, "format"],
    ["idempotency_key", { idempotency_key: "\udfffkey" }, "format"],
    ["webhook", { webhook: "https://hooks.example.com/\ud800" }, "format"],
  ])("%s with a lone surrogate: 400 naming it, never a 500", async (field, extra, constraint) => {
    const body = JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "a lighthouse", ...extra });
    const res = await sys.call("/queue", { method: "POST", token, body });
    expect(res.status).toBe(400);
    expect((await problemOf(res)).details).toEqual({ field, constraint });
  });

  it("a key with a well-formed pair (an emoji) is still a key", async () => {
    const body = JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "a lighthouse", idempotency_key: "k-🦊" });
    expect((await sys.call("/queue", { method: "POST", token, body })).status).toBe(202);
  });
});
