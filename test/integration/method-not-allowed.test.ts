// 405 with Allow on every route of the API, read from the routes the app registers: the same answers
// as the hand-written table they replaced (issue 8), before any token is asked for, trailing slash
// included; a path no route has stays a 404.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { problemOf } from "../helpers/processes.js";
import { startSystem, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;
let t: string;

beforeAll(async () => {
  sys = await startSystem({ worker: false });
  t = await sys.token("allow-customer");
});
afterAll(async () => {
  await sys?.close();
});

const DIGEST = `sha256-${"0".repeat(64)}`;

/** [a method the path lacks, path, Allow] — one row per path of the table the routes replaced. */
const REFUSED: readonly [string, string, string][] = [
  ["PUT", "/queue", "GET, POST"],
  ["POST", "/jobs/j_1", "GET, DELETE"],
  ["GET", "/jobs/j_1/cancel", "POST"],
  ["HEAD", "/jobs/j_1/cancel", "POST"],
  ["POST", "/jobs/j_1/events", "GET"],
  ["DELETE", "/models", "GET"],
  ["POST", "/models/aliases", "GET"],
  ["PUT", "/models/loras", "GET"],
  ["POST", `/objects/${DIGEST}`, "GET, HEAD"],
  ["POST", "/health", "GET, HEAD"],
  ["DELETE", "/ready", "GET, HEAD"],
  ["GET", "/image/flux/schnell/t2i", "POST"],
  ["PATCH", "/video/wan/any/t2v", "POST"],
];

describe("method_not_allowed from the registered routes", () => {
  it.each(REFUSED)("%s %s: 405, Allow %s, without a token", async (method, path, allow) => {
    for (const p of [path, `${path}/`]) {
      const res = await sys.call(p, { method });
      expect(res.headers.get("allow"), `${method} ${p}`).toBe(allow);
      // every answer carries the request id (set by the outermost middleware, api/app.ts)
      expect(res.headers.get("x-request-id"), `${method} ${p}`).toMatch(/^req_[A-Za-z0-9]{22}$/);
      if (method === "HEAD") expect(res.status, `${method} ${p}`).toBe(405);
      else await problemOf(res, 405, "method_not_allowed");
    }
  });

  it.each([
    ["GET", "/queue/extra"],
    ["GET", "/jobs/j_1/cancel/now"],
    ["POST", "/audio/flux/schnell/t2i"],
    ["POST", "/image/flux/schnell"],
    ["GET", "/models/other"],
    ["GET", "/nothing"],
  ])("%s %s: no route has the path, 404", async (method, path) => {
    const res = await sys.call(path, { method, token: t });
    expect(res.headers.get("x-request-id")).toMatch(/^req_[A-Za-z0-9]{22}$/);
    await problemOf(res, 404, "not_found");
  });
});
