// Bull Board over every queue of a deployment: the scheduler (our adapter) and the BullMQ queues
// (`render` attempts, the follow-up queues), read-only, every job's data redacted, pages bounded.
// Returns the Hono app Bull Board's Hono adapter builds, to be mounted at `basePath`.
import { resolve } from "node:path";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import type { BaseAdapter } from "@bull-board/api/dist/queueAdapters/base.js";
import type { BoardHooks, FormatterField } from "@bull-board/api/dist/types.js";
import { HonoAdapter } from "@bull-board/hono";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Queue } from "bullmq";
import type { Hono } from "hono";
import { redact, redactText } from "../core/redact.js";
import { BOARD_PAGE_MAX } from "../queues/board-reads.js";

export interface BoardOptions {
  /** Where the board is mounted (`/admin/queues`): its pages, static files and `api/` routes. */
  readonly basePath: string;
  /** Our adapters (the scheduler's), shown first. */
  readonly adapters: readonly BaseAdapter[];
  /** BullMQ queues, each shown through Bull Board's BullMQ adapter, read-only. */
  readonly queues: readonly { readonly queue: Queue; readonly description: string }[];
  /** A link in the board's menu (the logout page). */
  readonly logoutPath: string;
}

/** Job fields Bull Board shows through an adapter's formatters: each goes through {@link redact}. */
const FORMATTED: readonly FormatterField[] = ["data", "returnValue", "progress"];

/**
 * The board's hooks: every change is refused before it reaches a handler (each adapter is read-only
 * too; this also covers the board-wide pause and resume), a page never lists more than
 * BOARD_PAGE_MAX jobs, and every answer is redacted as a whole (failure reasons, stack traces,
 * options, flows and logs included), not only the fields the formatters see.
 */
export const boardHooks: BoardHooks = {
  before({ method, request }) {
    if (method !== "get") return { allow: false, status: 405, errorKey: "ERRORS.QUEUE_READ_ONLY" };
    const query = request.query as Record<string, unknown>;
    const perPage = Number(query["jobsPerPage"]);
    if (Number.isInteger(perPage) && perPage > BOARD_PAGE_MAX) query["jobsPerPage"] = String(BOARD_PAGE_MAX);
    const page = Number(query["page"]);
    if (Number.isInteger(page) && page > 100_000) query["page"] = "100000";
    return { allow: true };
  },
  after(_context, result) {
    return { ...result, body: redact(result.body) as typeof result.body };
  },
};

/**
 * Bull Board's Hono adapter serves its static files from a root it makes relative to the working
 * directory when the board is built; made absolute at that same moment, it works whatever the
 * process's working directory is later.
 */
const absoluteServeStatic = ((options: Parameters<typeof serveStatic>[0] = {}) =>
  serveStatic({
    ...options,
    root: resolve(options.root ?? "."),
  })) as typeof serveStatic;

/** Builds the board; mount the returned app at `basePath` (with non-strict routing). */
export function createBoardApp(opts: BoardOptions): Hono {
  const adapters: BaseAdapter[] = [
    ...opts.adapters,
    ...opts.queues.map(
      ({ queue, description }) =>
        new BullMQAdapter(queue, { readOnlyMode: true, allowRetries: false, description }),
    ),
  ];
  for (const adapter of adapters) {
    for (const field of FORMATTED) adapter.setFormatter(field, redact);
    adapter.setFormatter("name", (job: { name?: unknown }) =>
      redactText(typeof job.name === "string" ? job.name : ""),
    );
  }
  const serverAdapter = new HonoAdapter(absoluteServeStatic);
  serverAdapter.setBasePath(opts.basePath);
  createBullBoard({
    queues: adapters,
    serverAdapter,
    options: {
      handlerHooks: boardHooks,
      uiConfig: {
        boardTitle: "render-gateway",
        hideDocsLink: true,
        miscLinks: [{ text: "Log out", url: opts.logoutPath }],
        jobDetails: { defaultTab: "Data" },
      },
    },
  });
  return serverAdapter.registerPlugin();
}
