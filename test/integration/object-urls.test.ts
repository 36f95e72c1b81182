// GET /objects/{digest} over HTTP against a running gateway: a signed URL's expiry is bounded by the
// lifetime in force (OUTPUT_URL_TTL_S; `exp=0` only while it is 0), If-Range, and
// `X-Content-Type-Options: nosniff` on every kind of answer.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { outputExpiry, signObjectPath } from "../../src/core/url-signing.js";
import { FLUX_SCHNELL_512, startSystem, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;
let bearer: string;
let digest: string;
let signedUrl: string;

beforeAll(async () => {
  sys = await startSystem();
  bearer = await sys.token("objects-customer");
  const res = await sys.call("/image/flux/schnell/t2i?format=512", {
    method: "POST",
    token: bearer,
    body: JSON.stringify({ prompt: "an object to fetch" }),
  });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  signedUrl = res.headers.get("content-location")!;
  digest = /\/objects\/([^?]+)/.exec(signedUrl)![1]!;
});
afterAll(async () => {
  await sys?.close();
});

/** The path of a URL for the output signed with the gateway's key and expiry `exp`. */
const signedWith = (exp: number) => signObjectPath(sys.keys.objectUrl, digest, exp);

describe("signed object URLs are bounded by OUTPUT_URL_TTL_S", () => {
  it("serves the URL the gateway issued", async () => {
    const res = await fetch(signedUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/png");
    await res.arrayBuffer(); // an unread body would hold its connection open
  });

  it("refuses a validly signed exp=0 while a lifetime is in force (404, as for a bad signature)", async () => {
    const res = await fetch(sys.url + signedWith(0));
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    await res.text();
  });

  it("refuses a validly signed exp beyond now + OUTPUT_URL_TTL_S (+ the hour rounding)", async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const latest = outputExpiry(nowS, sys.settings.env.OUTPUT_URL_TTL_S);
    const status = async (path: string) => {
      const res = await fetch(sys.url + path);
      await res.arrayBuffer();
      return res.status;
    };
    expect(await status(signedWith(latest))).toBe(200);
    for (const exp of [latest + 3600, nowS + 365 * 86_400, 99_999_999_999]) {
      expect(await status(signedWith(exp)), `exp ${exp}`).toBe(404);
    }
  });
});

describe("If-Range over HTTP", () => {
  it("sends the range for the object's ETag and the whole object otherwise", async () => {
    const etag = `"${digest}"`;
    const ranged = await fetch(signedUrl, { headers: { range: "bytes=0-7", "if-range": etag } });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(8);
    const whole = await fetch(signedUrl, {
      headers: { range: "bytes=0-7", "if-range": "Wed, 21 Oct 2015 07:28:00 GMT" },
    });
    expect(whole.status).toBe(200);
    const size = Number(whole.headers.get("content-length"));
    expect(size).toBeGreaterThan(8);
    expect((await whole.arrayBuffer()).byteLength).toBe(size);
  });
});

describe("X-Content-Type-Options: nosniff", () => {
  it("is on objects, problem documents, JSON answers, event streams and 405s", async () => {
    const queued = await sys.call("/queue", {
      method: "POST",
      token: bearer,
      body: JSON.stringify({ ...FLUX_SCHNELL_512, prompt: "nosniff" }),
    });
    expect(queued.status).toBe(202);
    const { id } = (await queued.json()) as { id: string };
    const events = await sys.call(`/jobs/${id}/events`, { token: bearer });
    const answers: [string, Response][] = [
      ["object", await fetch(signedUrl)],
      ["object range", await fetch(signedUrl, { headers: { range: "bytes=0-3" } })],
      ["object HEAD", await fetch(signedUrl, { method: "HEAD" })],
      ["object 304", await fetch(signedUrl, { headers: { "if-none-match": `"${digest}"` } })],
      ["missing object", await fetch(`${sys.url}/objects/${digest}`)],
      ["202 from /queue", queued],
      ["job", await sys.call(`/jobs/${id}?redirect=false`, { token: bearer })],
      ["event stream", events],
      ["401", await sys.call("/queue")],
      ["404", await sys.call("/nowhere", { token: bearer })],
      ["405", await sys.call("/queue", { method: "DELETE", token: bearer })],
      ["health", await sys.call("/health")],
      ["models", await sys.call("/models", { token: bearer })],
    ];
    for (const [what, res] of answers) {
      expect(res.headers.get("x-content-type-options"), what).toBe("nosniff");
      if (!res.bodyUsed) await res.body?.cancel();
    }
  });
});
