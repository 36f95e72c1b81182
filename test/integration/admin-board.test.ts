// Bull Board at /admin/queues over a real system (API, worker, simulator, Redis): the scheduler queue
// lists the queued jobs of several tenants and priorities in the fair-share order with the positions
// GET /jobs/{id} shows, pages and counts them, shows running attempts with backend and attempt and
// the finished jobs; no prompt or webhook URL reaches any board answer; nothing can be changed.
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webhookJob } from "../../src/queues/webhook-jobs.js";
import { WEBHOOKS_QUEUE } from "../../src/queues/keys.js";
import { SECRET_HOOK, startBoardSystem, type BoardSystem } from "../helpers/admin-board.js";
import type { TestSystem } from "../helpers/system.js";

let board: BoardSystem;
let sys: TestSystem;
let admin: string;
let queued: readonly string[];
let running: readonly string[];
let completed: readonly string[];
let held: string;
let cancelled: string;
let hooks: Queue;

interface BoardJob {
  id: string;
  name: string;
  data: Record<string, unknown>;
  failedReason?: string;
  processedBy?: string | null;
}
interface BoardQueue {
  name: string;
  counts: Record<string, number>;
  jobs: BoardJob[];
  pagination: { pageCount: number; range: { start: number; end: number } };
  readOnlyMode: boolean;
  allowRetries: boolean;
}

async function boardGet(path: string): Promise<Response> {
  return fetch(`${sys.url}/admin/queues/api${path}`, {
    headers: { authorization: `Bearer ${admin}`, accept: "application/json" },
  });
}

/** The queue `name` as /api/queues shows it, with the jobs of `status` on `page`. */
async function boardQueue(name: string, status?: string, page = 1, perPage = 10): Promise<BoardQueue> {
  const q = new URLSearchParams({ activeQueue: name, page: String(page), jobsPerPage: String(perPage) });
  if (status) q.set("status", status);
  const res = await boardGet(`/queues?${q.toString()}`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { queues: BoardQueue[] };
  const found = body.queues.find((x) => x.name === name);
  expect(found, `queue ${name} in ${body.queues.map((x) => x.name).join(", ")}`).toBeDefined();
  return found!;
}

const jobDoc = (id: string) => board.jobDoc(id);

beforeAll(async () => {
  board = await startBoardSystem();
  ({ sys, admin, queued, running, completed, held, cancelled } = board);
  // a webhook delivery waiting in the follow-up queue (no pipeline runs here)
  hooks = new Queue(WEBHOOKS_QUEUE, { connection: sys.redis.client, prefix: sys.redis.prefix });
  const w = webhookJob(
    {
      url: SECRET_HOOK,
      customerId: "alice",
      event: { jobId: completed[0]!, event: "complete", seq: 9, at: Date.now(), data: {}, record: {} },
    },
    { logTtlS: 3600 },
  );
  await hooks.add(w.name, w.data, w.opts);
}, 120_000);

afterAll(async () => {
  await hooks?.close();
  await board?.close();
});

describe("the scheduler queue on the board", () => {
  it("lists every queued job in the fair-share order, each with the position GET /jobs/{id} shows", async () => {
    const q = await boardQueue("scheduler", "waiting", 1, 100);
    // held jobs keep their place in the order: 12 queued + the held one
    expect(q.counts["waiting"]).toBe(queued.length + 1);
    const ids = q.jobs.map((j) => j.id);
    expect(new Set(ids)).toEqual(new Set([...queued, held]));
    const docs = await Promise.all(ids.map(jobDoc));
    docs.forEach((doc, i) => {
      expect(doc.position).toBe(i);
      expect(q.jobs[i]!.data["position"]).toBe(i);
      expect(q.jobs[i]!.name).toMatch(new RegExp(`^#${i} `));
    });
    // tenant, priority and held are shown
    const heldRow = q.jobs.find((j) => j.id === held)!;
    expect(heldRow.data).toMatchObject({ tenant: "carol", priority: "high", held: "concurrency_limit" });
    const other = q.jobs.find((j) => j.id === queued[0])!;
    expect(other.data).toMatchObject({ tenant: "erin", priority: "low", held: false });
  });

  it("pages the order: page 2 of 5 holds positions 5 to 9", async () => {
    const first = await boardQueue("scheduler", "waiting", 1, 5);
    const second = await boardQueue("scheduler", "waiting", 2, 5);
    expect(first.pagination.pageCount).toBe(3);
    expect(first.jobs.map((j) => j.data["position"])).toEqual([0, 1, 2, 3, 4]);
    expect(second.jobs.map((j) => j.data["position"])).toEqual([5, 6, 7, 8, 9]);
    expect(second.pagination.range).toEqual({ start: 5, end: 9 });
  });

  it("never reads more than 100 jobs for one page, whatever the board asks for", async () => {
    const q = await boardQueue("scheduler", "waiting", 1, 1_000_000);
    expect(q.pagination.range.end - q.pagination.range.start + 1).toBeLessThanOrEqual(100);
    const render = await boardQueue("render", "active", 1, 1_000_000);
    expect(render.pagination.range.end - render.pagination.range.start + 1).toBeLessThanOrEqual(100);
  });

  it("counts held, running and finished jobs", async () => {
    const q = await boardQueue("scheduler");
    expect(q.counts).toMatchObject({ paused: 1, active: 3, delayed: 0, completed: 2, failed: 1 });
    const paused = await boardQueue("scheduler", "paused");
    expect(paused.jobs.map((j) => j.id)).toEqual([held]);
  });

  it("shows running jobs with their backend and attempt", async () => {
    const q = await boardQueue("scheduler", "active");
    expect(new Set(q.jobs.map((j) => j.id))).toEqual(new Set(running));
    for (const j of q.jobs) {
      expect(j.data).toMatchObject({ backend: "gpu-a", attempt: 1 });
      expect(j.processedBy).toBe("gpu-a");
      expect(j.name).toContain("gpu-a · attempt 1");
    }
  });

  it("lists the finished jobs: completed ones, and the cancelled one as failed with its reason", async () => {
    const done = await boardQueue("scheduler", "completed");
    expect(new Set(done.jobs.map((j) => j.id))).toEqual(new Set(completed));
    const failed = await boardQueue("scheduler", "failed");
    expect(failed.jobs.map((j) => j.id)).toEqual([cancelled]);
    expect(failed.jobs[0]!.failedReason).toMatch(/^cancelled: /);
  });

  it("shows one job on its own page, with its state", async () => {
    const res = await boardGet(`/queues/scheduler/${held}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { job: BoardJob; status: string };
    expect(body.status).toBe("paused");
    expect(body.job.data).toMatchObject({ tenant: "carol", held: "concurrency_limit" });
    expect((await boardGet("/queues/scheduler/j_doesnotexist0000000000")).status).toBe(404);
  });
});

describe("the BullMQ queues on the board", () => {
  it("shows the render attempts and the follow-up queues (billing, webhooks, audit), all read-only", async () => {
    const res = await boardGet("/queues");
    const body = (await res.json()) as { queues: BoardQueue[] };
    expect(body.queues.map((q) => q.name)).toEqual([
      "scheduler",
      "render",
      "billing",
      "webhooks",
      "audit",
      "analytics",
    ]);
    for (const q of body.queues) expect(q).toMatchObject({ readOnlyMode: true, allowRetries: false });
    const render = await boardQueue("render", "active");
    expect(render.counts["active"]).toBe(3);
    const hooksQ = await boardQueue("webhooks", "waiting");
    expect(hooksQ.jobs).toHaveLength(1);
  });
});

describe("redaction", () => {
  it("no prompt, negative prompt, image or webhook URL appears in any board answer", async () => {
    const paths = ["/queues"];
    for (const name of ["scheduler", "render", "billing", "webhooks", "audit", "analytics"]) {
      for (const status of ["latest", "active", "waiting", "paused", "delayed", "completed", "failed"]) {
        paths.push(
          `/queues?${new URLSearchParams({ activeQueue: name, status, jobsPerPage: "100" }).toString()}`,
        );
      }
    }
    const render = await boardQueue("render", "active");
    const hooksQ = await boardQueue("webhooks", "waiting");
    for (const id of [...queued, ...running, ...completed, held, cancelled])
      paths.push(`/queues/scheduler/${id}`);
    for (const j of [...render.jobs, ...hooksQ.jobs]) {
      const queue = render.jobs.includes(j) ? "render" : "webhooks";
      paths.push(
        `/queues/${queue}/${encodeURIComponent(j.id)}`,
        `/queues/${queue}/${encodeURIComponent(j.id)}/logs`,
      );
      paths.push(`/queues/${queue}/${encodeURIComponent(j.id)}/flow`);
    }
    for (const path of paths) {
      const res = await boardGet(path);
      expect(res.status, path).toBe(200);
      const text = await res.text();
      for (const secret of ["SECRETPROMPT", "SECRETNEGATIVE", "SECRETHOOK", "hooks.example.com"]) {
        expect(text, `${secret} in ${path}`).not.toContain(secret);
      }
    }
    // what is shown instead: the field, redacted
    const row = (await boardQueue("scheduler", "waiting")).jobs[0]!;
    const request = row.data["request"] as Record<string, unknown>;
    expect(request).toMatchObject({
      prompt: "[redacted]",
      negative_prompt: "[redacted]",
      steps: expect.any(Number),
    });
  });
});

describe("read-only", () => {
  it("refuses every change: retry, clean, promote, remove, add, pause", async () => {
    const attempt = (await boardQueue("render", "active")).jobs[0]!.id;
    const changes: [string, string][] = [
      ["PUT", `/queues/scheduler/${queued[0]}/retry`],
      ["PUT", `/queues/scheduler/${queued[0]}/clean`],
      ["PUT", `/queues/scheduler/${held}/promote`],
      ["PUT", `/queues/render/${encodeURIComponent(attempt)}/retry`],
      ["PUT", `/queues/render/${encodeURIComponent(attempt)}/clean`],
      ["PUT", "/queues/render/retry/failed"],
      ["PUT", "/queues/render/clean/completed"],
      ["PUT", "/queues/webhooks/promote"],
      ["PUT", "/queues/webhooks/empty"],
      ["POST", "/queues/webhooks/add"],
      ["PUT", "/queues/pause"],
      ["PUT", "/queues/render/pause"],
      [
        "PATCH",
        `/queues/webhooks/${encodeURIComponent((await boardQueue("webhooks", "waiting")).jobs[0]!.id)}/update-data`,
      ],
    ];
    for (const [method, path] of changes) {
      const res = await fetch(`${sys.url}/admin/queues/api${path}`, {
        method,
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status, `${method} ${path}`).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, HEAD");
    }
    // nothing moved
    expect((await jobDoc(queued[0]!)).status).toBe("queued");
    expect((await boardQueue("render")).counts["active"]).toBe(3);
    expect((await boardQueue("webhooks")).counts["waiting"]).toBe(1);
    expect(await hooks.isPaused()).toBe(false);
  });
});
