// Webhook deliveries, the pure parts: message ids, the body, the retry schedule, what an answer means,
// the task's shape check, and signatures against the Standard Webhooks known-answer vector.
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { parseEnv } from "../../src/config/env.js";
import type { OutboxEvent } from "../../src/core/outbox.js";
import {
  attemptVerdict,
  isWebhookTask,
  jobOfDelivery,
  mayRetry,
  newWebhookSecret,
  retryDelayMs,
  webhookBody,
  webhookId,
  webhookJobId,
} from "../../src/core/webhook-delivery.js";
import { signedHeaders } from "../../src/pipeline/webhooks/deliver.js";

const JOB = "j_abcdefghijklmnopqrstuv";
const DIGEST = `sha256-${"a".repeat(64)}`;
const event: OutboxEvent = {
  jobId: JOB,
  event: "complete",
  seq: 7,
  at: Date.UTC(2026, 11, 6, 12, 0, 0, 123),
  data: { output: DIGEST },
  record: {
    id: JOB,
    cust: "c1",
    status: "complete",
    prio: "normal",
    mod: "image",
    fam: "flux",
    mdl: "schnell",
    task: "t2i",
    fmt: "square",
    req: JSON.stringify({ prompt: "a fox", image: { kind: "url", url: "https://img.example/a.png" } }),
    created: "1000",
    completed: "2000",
    output: DIGEST,
    gpu_ms: "900",
    webhook: "https://hooks.example/x",
  },
};

describe("webhook message ids", () => {
  it("are one per event, stable, and name their job", () => {
    expect(webhookId(event)).toBe(`msg_${JOB}.7`);
    expect(webhookId({ jobId: JOB, seq: 7 })).toBe(webhookId(event));
    expect(jobOfDelivery(webhookId(event))).toBe(JOB);
    expect(webhookJobId(event)).toBe(`wh.${JOB}.7`);
    expect(webhookJobId(event, 2)).toBe(`wh.${JOB}.7.r2`);
    for (const bad of ["", "msg_", `msg_${JOB}`, `msg_${JOB}.0`, `msg_${JOB}.x`, `msg_j_short.1`, `${JOB}.1`])
      expect(jobOfDelivery(bad)).toBeUndefined();
  });
});

describe("the delivery body", () => {
  it("is { type: job.<event>, timestamp, data: the public job } with signed output URLs", () => {
    const body = JSON.parse(webhookBody(event, (d) => `https://gw.example/objects/${d}?sig=x`)) as {
      type: string;
      timestamp: string;
      data: Record<string, unknown>;
    };
    expect(body.type).toBe("job.complete");
    expect(body.timestamp).toBe("2026-12-06T12:00:00.123Z");
    expect(body.data).toMatchObject({
      id: JOB,
      status: "complete",
      output: `https://gw.example/objects/${DIGEST}?sig=x`,
      gpu_ms: 900,
      request: { modality: "image", family: "flux", prompt: "a fox", image: "https://img.example/a.png" },
    });
  });
});

describe("the retry schedule", () => {
  const s = { baseMs: 100, maxMs: 1_000, forMs: 10_000 };
  it("doubles from the base up to the cap, with jitter between half and all of it", () => {
    expect(retryDelayMs(1, s, () => 0)).toBe(50);
    expect(retryDelayMs(1, s, () => 0.999999)).toBe(100);
    expect(retryDelayMs(2, s, () => 0.999999)).toBe(200);
    expect(retryDelayMs(3, s, () => 0)).toBe(200);
    expect(retryDelayMs(50, s, () => 0.999999)).toBe(1_000);
    expect(retryDelayMs(10_000, s, () => 0.5)).toBe(750);
  });
  it("retries within the window only", () => {
    expect(mayRetry(0, 9_999, s)).toBe(true);
    expect(mayRetry(0, 10_000, s)).toBe(false);
  });
  it("is configured by env vars whose base may not exceed the cap", () => {
    const env = parseEnv({ WEBHOOK_RETRY_BASE_MS: "20", WEBHOOK_RETRY_MAX_MS: "200" });
    expect([env.WEBHOOK_RETRY_BASE_MS, env.WEBHOOK_RETRY_MAX_MS, env.WEBHOOK_RETRY_FOR_MS]).toEqual([
      20, 200, 86_400_000,
    ]);
    expect(() => parseEnv({ WEBHOOK_RETRY_BASE_MS: "300", WEBHOOK_RETRY_MAX_MS: "200" })).toThrow(
      /WEBHOOK_RETRY_BASE_MS/,
    );
  });
});

describe("an attempt's answer", () => {
  it.each([
    [{ status: 200 }, "delivered"],
    [{ status: 204 }, "delivered"],
    [{ status: 410 }, "gone"],
    [{ status: 404 }, "retry"],
    [{ status: 500 }, "retry"],
    [{ status: 429 }, "retry"],
    [{ error: "timeout" }, "retry"],
    [{ error: "network" }, "retry"],
    [{ error: "redirect" }, "retry"],
    [{ error: "blocked_target" }, "refused"],
    [{ error: "blocked_port" }, "refused"],
    [{ error: "bad_url" }, "refused"],
  ] as const)("%o → %s", (outcome, verdict) => {
    expect(attemptVerdict(outcome)).toBe(verdict);
  });
});

describe("a task's shape", () => {
  const task = { event, url: "https://hooks.example/x", customerId: "c1" };
  it("is checked before any work", () => {
    expect(isWebhookTask(task)).toBe(true);
    for (const bad of [
      null,
      "x",
      { ...task, url: 3 },
      { ...task, url: "x".repeat(5_000) },
      { ...task, customerId: "" },
      { ...task, event: { ...event, jobId: "nope" } },
      { ...task, event: { ...event, seq: 0 } },
      { ...task, event: { ...event, seq: "7" } },
      { ...task, event: { ...event, seq: 1.5 } },
      { ...task, event: { ...event, record: null } },
    ])
      expect(isWebhookTask(bad)).toBe(false);
  });
});

describe("signatures", () => {
  it("match the Standard Webhooks known-answer vector", () => {
    const headers = signedHeaders("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330_000, '{"test": 2432232314}', [
      "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ]);
    expect(headers).toEqual({
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    });
  });
  it("carry one signature per secret, each verifying with its own secret only", () => {
    const [a, b, c] = [1, 2, 3].map((n) => newWebhookSecret((len) => new Uint8Array(len).fill(n)));
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const now = Date.now();
    const body = '{"type":"job.complete"}';
    const headers = signedHeaders("msg_1", now, body, [a!, b!]);
    expect(headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(() => new Webhook(a!).verify(body, headers)).not.toThrow();
    expect(() => new Webhook(b!).verify(body, headers)).not.toThrow();
    expect(() => new Webhook(c!).verify(body, headers)).toThrow();
    expect(() => new Webhook(a!).verify(body.replace("complete", "error"), headers)).toThrow();
  });
});
