// `start --roles admin` alone, as a real process started from another working directory: it serves
// Bull Board and its login (and /health, /ready) on PORT and nothing of the API; the board shows the
// jobs an api process (another process, same Redis) admitted, at the positions that API reports.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { E2eHarness, call, token, type Gateway } from "../helpers/processes.js";

let h: E2eHarness;
let api: Gateway;
let adminUrl: string;
let admin: string;
const ids: string[] = [];

beforeAll(async () => {
  h = new E2eHarness();
  // no worker: what the api admits stays queued
  api = await h.start("api");
  const board = await h.start("admin", { wait: "none", cwd: h.tempDir() });
  adminUrl = await board.proc.waitForFile(join(h.dataDir, "run", "admin.url"), 60_000);
  admin = await token("ops", { admin: true });
  for (const [customer, priority] of [
    ["alice", "low"],
    ["bob", "high"],
    ["alice", "normal"],
    ["carol", "normal"],
  ] as const) {
    const res = await call(api.url, "/queue", {
      method: "POST",
      token: await token(customer),
      body: {
        modality: "image",
        family: "flux",
        model: "schnell",
        task: "t2i",
        priority,
        prompt: "a red fox",
      },
    });
    expect(res.status).toBe(202);
    ids.push(((await res.json()) as { id: string }).id);
  }
}, 120_000);

afterAll(async () => {
  await h?.cleanup();
});

describe("the admin role alone", () => {
  it("serves /health, /ready and the login form, and none of the API", async () => {
    expect((await call(adminUrl, "/health")).status).toBe(200);
    expect((await call(adminUrl, "/ready")).status).toBe(200);
    const login = await call(adminUrl, "/admin/login", { headers: { accept: "text/html" } });
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('name="token"');
    const queue = await call(adminUrl, "/queue", { token: admin });
    expect(queue.status).toBe(404);
    expect(queue.headers.get("content-type")).toBe("application/problem+json");
    expect((await call(adminUrl, "/admin/queues/api/queues")).status).toBe(401);
  });

  it("shows the queued jobs in the order, at the positions the API reports", async () => {
    const res = await call(adminUrl, "/admin/queues/api/queues?activeQueue=scheduler&status=waiting", {
      token: admin,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      queues: {
        name: string;
        counts: Record<string, number>;
        jobs: { id: string; data: { position: number } }[];
      }[];
    };
    const scheduler = body.queues.find((q) => q.name === "scheduler")!;
    expect(scheduler.counts["waiting"]).toBe(ids.length);
    expect(new Set(scheduler.jobs.map((j) => j.id))).toEqual(new Set(ids));
    for (const [i, j] of scheduler.jobs.entries()) {
      const doc = await call(api.url, `/jobs/${j.id}`, { token: admin });
      expect(((await doc.json()) as { position: number }).position).toBe(i);
      expect(j.data.position).toBe(i);
    }
    expect(body.queues.map((q) => q.name)).toEqual([
      "scheduler",
      "render",
      "billing",
      "webhooks",
      "audit",
      "analytics",
    ]);
  });

  it("logs in through the form and serves the board's page and static files (whatever its cwd)", async () => {
    const login = await fetch(`${adminUrl}/admin/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: adminUrl },
      body: new URLSearchParams({ token: admin }).toString(),
      redirect: "manual",
    });
    expect(login.status).toBe(303);
    const cookie = login.headers.getSetCookie()[0]!.split(";")[0]!;
    const page = await call(adminUrl, "/admin/queues/queue/scheduler", {
      headers: { accept: "text/html", cookie },
    });
    expect(page.status).toBe(200);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="(static\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(3);
    for (const asset of assets) {
      const res = await call(adminUrl, `/admin/queues/${asset}`, { headers: { cookie } });
      expect(res.status, asset).toBe(200);
      await res.arrayBuffer();
    }
  });
});
