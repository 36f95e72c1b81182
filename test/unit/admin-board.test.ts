// The admin board's pure parts: how scheduler jobs map to Bull Board statuses and cards, page bounds,
// the board's hooks (changes refused, pages capped), and the login cookie's attributes (Secure over
// https, Max-Age bounded by the session and the credential) with a stand-in authenticator.
import { tmpdir } from "node:os";
import { Hono } from "hono";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/api/auth.js";
import { createErrorHandler } from "../../src/api/problem.js";
import { AppError } from "../../src/core/errors.js";
import { decodeJob } from "../../src/core/job.js";
import { clampPage, sliceGroups, BOARD_PAGE_MAX, type BoardJob } from "../../src/queues/board-reads.js";
import { jobJsonOf, stateOf, STATUS_VIEWS } from "../../src/admin/scheduler-job.js";
import { boardHooks, createBoardApp } from "../../src/admin/board.js";
import { SchedulerAdapter } from "../../src/admin/scheduler-adapter.js";
import type { BoardReads } from "../../src/queues/board-reads.js";
import type { Redis } from "ioredis";
import { createAdminApp } from "../../src/admin/admin-app.js";
import type { SessionSettings } from "../../src/admin/session.js";

const T0 = 1_900_000_000_000;

function boardJob(fields: Record<string, string>, extra: Partial<BoardJob> = {}): BoardJob {
  const job = decodeJob({
    id: "j_aaaaaaaaaaaaaaaaaaaaaa",
    cust: "acme",
    prio: "low",
    fam: "flux",
    mdl: "schnell",
    task: "t2i",
    fmt: "512",
    route: "flux/schnell",
    req: JSON.stringify({ prompt: "p", steps: 4 }),
    created: String(T0),
    attempt: "0",
    progress: "0",
    ...fields,
  });
  return { job, position: -1, held: false, ...extra };
}

describe("scheduler jobs as Bull Board shows them", () => {
  it("maps each scheduler state to one Bull Board status", () => {
    expect(STATUS_VIEWS).toEqual({
      active: "running",
      waiting: "queued",
      paused: "held",
      delayed: "backoff",
      completed: "completed",
      failed: "failed",
    });
    expect(stateOf(boardJob({ status: "queued" }, { position: 3 }))).toBe("waiting");
    expect(stateOf(boardJob({ status: "queued" }, { position: 3, held: true }))).toBe("paused");
    expect(stateOf(boardJob({ status: "queued" }, { position: 3, notBefore: T0 + 5_000 }))).toBe("delayed");
    expect(stateOf(boardJob({ status: "running", backend: "gpu-a" }))).toBe("active");
    expect(stateOf(boardJob({ status: "complete" }))).toBe("completed");
    expect(stateOf(boardJob({ status: "error" }))).toBe("failed");
    expect(stateOf(boardJob({ status: "cancelled" }))).toBe("failed");
  });

  it("a queued job's card: position, tenant, model, priority, held; its data keeps the request", () => {
    const json = jobJsonOf(boardJob({ status: "queued" }, { position: 7, held: true }));
    expect(json.name).toBe("#7 acme · flux/schnell t2i · low · held");
    expect(json.data).toMatchObject({
      position: 7,
      tenant: "acme",
      priority: "low",
      held: "concurrency_limit",
    });
    expect((json.data as { request: unknown }).request).toMatchObject({ prompt: "p", steps: 4 });
    const later = jobJsonOf(boardJob({ status: "queued" }, { position: 0, notBefore: T0 + 5_000 }));
    expect(later.delay).toBe(5_000);
    expect(later.name).toContain("retry backoff");
  });

  it("a running job's card names its backend and attempt; a failed one its reason", () => {
    const run = jobJsonOf(boardJob({ status: "running", backend: "gpu-a", attempt: "2", progress: "0.25" }));
    expect(run.name).toBe("acme · flux/schnell t2i · gpu-a · attempt 2");
    expect(run).toMatchObject({ processedBy: "gpu-a", attemptsMade: 2, progress: 25 });
    expect(run.data).toMatchObject({ backend: "gpu-a", attempt: 2 });
    const err = JSON.stringify({ code: "ttl_expired", message: "not started in time", retriable: false });
    const failed = jobJsonOf(boardJob({ status: "cancelled", err, completed: String(T0 + 1) }));
    expect(failed).toMatchObject({ failedReason: "ttl_expired: not started in time", finishedOn: T0 + 1 });
  });
});

describe("page bounds", () => {
  it("clamps a page to BOARD_PAGE_MAX jobs from a non-negative start", () => {
    expect(clampPage(0, 9)).toEqual({ start: 0, end: 9 });
    expect(clampPage(5, 1e12)).toEqual({ start: 5, end: 5 + BOARD_PAGE_MAX - 1 });
    expect(clampPage(-3, 2)).toEqual({ start: 0, end: 2 });
    expect(clampPage(Number.NaN, Number.NaN)).toEqual({ start: 0, end: BOARD_PAGE_MAX - 1 });
    expect(clampPage(4, 3)).toBeUndefined();
  });

  it("slices a page out of groups listed one after another", () => {
    const groups: [string, number][] = [
      ["a", 3],
      ["b", 0],
      ["c", 4],
      ["d", 2],
    ];
    expect(sliceGroups(groups, 0, 1)).toEqual([["a", 0, 1]]);
    expect(sliceGroups(groups, 2, 5)).toEqual([
      ["a", 2, 2],
      ["c", 0, 2],
    ]);
    expect(sliceGroups(groups, 6, 20)).toEqual([
      ["c", 3, 3],
      ["d", 0, 1],
    ]);
    expect(sliceGroups(groups, 9, 12)).toEqual([]);
  });
});

describe("the board's hooks", () => {
  const context = (method: "get" | "put" | "post" | "patch", query: Record<string, string> = {}) => ({
    method,
    route: "/api/queues",
    request: { queues: new Map(), uiConfig: {}, query, params: {}, body: {}, headers: {} },
  });

  it("refuse every change before any handler runs", async () => {
    for (const method of ["put", "post", "patch"] as const) {
      expect(await boardHooks.before!(context(method))).toMatchObject({ allow: false, status: 405 });
    }
  });

  it("cap the jobs per page a read asks for", async () => {
    const ctx = context("get", { jobsPerPage: "100000", page: "99999999" });
    expect(await boardHooks.before!(ctx)).toEqual({ allow: true });
    expect(ctx.request.query).toEqual({ jobsPerPage: String(BOARD_PAGE_MAX), page: "100000" });
  });

  it("redact every answer as a whole", async () => {
    const body = { job: { failedReason: "POST https://hooks.example.com/x: 500", data: { prompt: "p" } } };
    const out = await boardHooks.after!(context("get"), { status: 200, body });
    expect(JSON.stringify(out.body)).not.toMatch(/hooks\.example|"p"/);
  });
});

describe("the login cookie", () => {
  const never: Principal = {
    customerId: "ops",
    tier: "pro",
    admin: true,
    expiresAt: Number.POSITIVE_INFINITY,
  };
  const auth = {
    authenticate(header: string | undefined): Promise<Principal> {
      if (header === "Bearer good") return Promise.resolve(never);
      return Promise.reject(new AppError("unauthorized", "Invalid or expired token"));
    },
  };
  const app = (session: SessionSettings) => {
    const root = new Hono({ strict: false });
    root.onError(createErrorHandler(pino({ level: "silent" })));
    root.route("/admin", createAdminApp({ auth, session, clock: () => T0, board: new Hono() }));
    return root;
  };
  const login = (a: Hono, origin: string) =>
    a.request("http://gw.internal/admin/login", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin, host: "gw.internal" },
      body: "token=good",
    });

  it("is Secure over https, for at most the session's lifetime, and PUBLIC_URL's origin may post", async () => {
    const res = await login(
      app({ ttlS: 600, secure: true, publicOrigin: "https://admin.example.com" }),
      "https://admin.example.com",
    );
    expect(res.status).toBe(303);
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^rg_admin=good; Max-Age=600; Path=\/admin; HttpOnly; Secure; SameSite=Strict$/);
  });

  it("accepts a form from the request's own host, refuses one from another", async () => {
    const plain = app({ ttlS: 600, secure: false });
    const same = await login(plain, "http://gw.internal");
    expect(same.status).toBe(303);
    expect(same.headers.get("set-cookie")).not.toContain("Secure");
    expect((await login(plain, "http://elsewhere.example")).status).toBe(403);
  });
});

describe("the board's static files", () => {
  it("are found after the working directory changes", async () => {
    const reads: BoardReads = {
      counts: () => Promise.reject(new Error("not read")),
      page: () => Promise.reject(new Error("not read")),
      job: () => Promise.reject(new Error("not read")),
    };
    const board = createBoardApp({
      basePath: "/admin/queues",
      adapters: [new SchedulerAdapter({ reads, redis: {} as Redis, prefix: "{t}" })],
      queues: [],
      logoutPath: "/admin/logout",
    });
    const root = new Hono({ strict: false });
    root.route("/admin/queues", board);
    const cwd = process.cwd();
    process.chdir(tmpdir());
    try {
      const res = await root.request("http://x/admin/queues/static/favicon-32x32.png");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("image/png");
      await res.arrayBuffer();
    } finally {
      process.chdir(cwd);
    }
  });
});
