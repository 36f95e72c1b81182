// The admin board's one redaction (src/core/redact.ts): prompts, images, masks, previews, URLs and
// secret-looking fields and values never survive it, wherever they sit, and it stays bounded.
import { describe, expect, it } from "vitest";
import {
  REDACT_LIMITS,
  REDACTED,
  REDACTED_DATA,
  REDACTED_SECRET,
  REDACTED_URL,
  TRUNCATED,
  isRedactedField,
  redact,
  redactText,
} from "../../src/core/redact.js";

const PNG_URI = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ";

describe("redact", () => {
  it("hides an attempt's detail: a backend's error body may echo the prompt", () => {
    const echoed =
      'BackendHttpError: backend answered 422: {"detail":[{"loc":["body","prompt"],"input":"Jane Doe at 12 Elm St"}]}';
    const out = redact({ attempt_log: [{ attempt: 1, outcome: "error", detail: echoed }] });
    expect(JSON.stringify(out)).not.toContain("Jane Doe");
    expect(isRedactedField("detail")).toBe(true);
  });

  it("replaces prompts, images, masks, previews, webhooks, URLs and secrets by field name", () => {
    const out = redact({
      prompt: "a lighthouse",
      negative_prompt: "blurry",
      negativePrompt: "blurry",
      image: { kind: "digest", digest: "sha256-abc" },
      mask: PNG_URI,
      preview: "AAAA",
      webhook: "https://hooks.example.com/x",
      webhook_url: "https://hooks.example.com/x",
      upload_url: "https://gw/uploads/a?sig=1",
      api_key: "rk_x",
      Authorization: "Bearer abc",
      secret: "whsec_x",
      token: "t.1",
      password: "p",
      steps: 4,
      width: 512,
      webhook_events: ["complete"],
      model: "schnell",
      image_count: undefined,
      seed: null,
    }) as Record<string, unknown>;
    for (const k of [
      "prompt",
      "negative_prompt",
      "negativePrompt",
      "image",
      "mask",
      "preview",
      "webhook",
      "webhook_url",
      "upload_url",
      "api_key",
      "Authorization",
      "secret",
      "token",
      "password",
    ]) {
      expect(out[k], k).toBe(REDACTED);
    }
    expect(out).toMatchObject({
      steps: 4,
      width: 512,
      webhook_events: ["complete"],
      model: "schnell",
      seed: null,
    });
  });

  it("parses JSON kept in a string (a stored request) and redacts inside it", () => {
    const record = {
      req: JSON.stringify({ prompt: "secret words", steps: 8, image: PNG_URI }),
      status: "queued",
    };
    expect(redact(record)).toEqual({
      req: { prompt: REDACTED, steps: 8, image: REDACTED },
      status: "queued",
    });
    const nested = { data: JSON.stringify({ request: JSON.stringify({ negative_prompt: "x", lora: [] }) }) };
    expect(redact(nested)).toEqual({ data: { request: { negative_prompt: REDACTED, lora: [] } } });
  });

  it("replaces URLs, data: URIs and secret-looking tokens inside any text", () => {
    const key = `rk_abcdefghij12_${"A".repeat(43)}`;
    const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcHMifQ.c2lnbmF0dXJl";
    const text = `POST https://hooks.example.com/a?b=1 failed; sent ${PNG_URI}, key ${key}, ${jwt}, whsec_c2VjcmV0c2VjcmV0`;
    const out = redactText(text);
    expect(out).toBe(
      `POST ${REDACTED_URL} failed; sent ${REDACTED_DATA}, key ${REDACTED_SECRET}, ${REDACTED_SECRET}, ${REDACTED_SECRET}`,
    );
    expect(redact({ failedReason: text, stacktrace: [text] })).toEqual({
      failedReason: out,
      stacktrace: [out],
    });
    // file paths of stack traces are not URLs to hide
    expect(redactText("at f (file:///srv/app/x.js:1:2)")).toBe("at f (file:///srv/app/x.js:1:2)");
  });

  it("leaves its input alone, and a second pass changes nothing", () => {
    const input = {
      a: { prompt: "p", list: ["https://x.example/y", 1, true] },
      s: '{"webhook":"https://h/x"}',
    };
    const copy = structuredClone(input);
    const once = redact(input);
    expect(input).toEqual(copy);
    expect(redact(once)).toEqual(once);
    expect(once).toEqual({
      a: { prompt: REDACTED, list: [REDACTED_URL, 1, true] },
      s: { webhook: REDACTED },
    });
  });

  it("is bounded: depth, node count and string length", () => {
    let deep: unknown = "leaf";
    for (let i = 0; i < 100; i++) deep = { d: deep };
    expect(JSON.stringify(redact(deep))).toContain(TRUNCATED);
    const wide = Array.from({ length: REDACT_LIMITS.nodes * 2 }, (_, i) => i);
    const out = redact(wide) as unknown[];
    expect(out.length).toBeLessThanOrEqual(REDACT_LIMITS.nodes + 1);
    expect(out.at(-1)).toBe(TRUNCATED);
    const long = redact("x".repeat(REDACT_LIMITS.stringChars * 4)) as string;
    expect(long.length).toBe(REDACT_LIMITS.stringChars + 1);
    // a string that only looks like JSON is shown as text
    expect(redact("[not json https://x.example]")).toBe(`[not json ${REDACTED_URL}]`);
  });

  it("names fields the same in any case or separator style", () => {
    for (const name of [
      "PROMPT",
      "Negative-Prompt",
      "initImage",
      "mask_image",
      "callbackUrl",
      "X-Api-Key",
      "sig",
    ]) {
      expect(isRedactedField(name), name).toBe(true);
    }
    for (const name of [
      "steps",
      "status",
      "tenant",
      "position",
      "webhook_events",
      "format",
      "task",
      "attempt",
    ]) {
      expect(isRedactedField(name), name).toBe(false);
    }
  });
});
