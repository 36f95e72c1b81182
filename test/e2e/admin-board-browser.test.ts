// Bull Board in a real browser (Debian's chromium): a visitor without a session is sent to the login
// form, the form's admin token opens the board, the scheduler queue's waiting list shows the queued
// jobs in the order with position, tenant and priority, and no prompt is on the page. Saves a
// screenshot (test-output/bull-board-scheduler.png; docs/images/bull-board.png is one of them).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { launchBrowser, screenshotPath } from "../helpers/browser.js";
import { SECRET_PROMPT, startBoardSystem, type BoardSystem } from "../helpers/admin-board.js";

let board: BoardSystem;
let browser: Browser;

beforeAll(async () => {
  [board, browser] = await Promise.all([startBoardSystem({ queuedRounds: 3 }), launchBrowser()]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await board?.close();
});

describe("the admin board in a browser", () => {
  it("logs in through /admin/login, opens the scheduler queue and shows the queued jobs in order", async () => {
    const { sys, admin } = board;
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    // the board's stylesheet links a web font: nothing leaves this machine
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    // the board's own display setting: nested job data folded, so a screen shows more of the order
    const settings = JSON.stringify({ state: { defaultCollapseDepth: 2 }, version: 2 });
    await context.addInitScript({
      content: `localStorage.setItem("board-settings", ${JSON.stringify(settings)});`,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    try {
      await page.goto(`${sys.url}/admin/queues`);
      expect(new URL(page.url()).pathname).toBe("/admin/login");
      await page.getByLabel("Admin token").fill(admin);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForURL(`${sys.url}/admin/queues`);
      const cookies = await context.cookies();
      expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite, c.path])).toEqual([
        ["rg_admin", true, "Strict", "/admin"],
      ]);

      await page.getByRole("link", { name: "scheduler", exact: true }).first().click();
      await page.locator('a[href$="/queue/scheduler?status=waiting"]').click();
      await page.waitForURL(/\/queue\/scheduler\?status=waiting$/);
      // the job at position 0, as GET /jobs/{id} reports it, heads the list
      const docs = await Promise.all([...board.queued, board.held].map((id) => board.jobDoc(id)));
      const head = docs.find((d) => d.position === 0)!;
      await page.getByText(String(head.id), { exact: true }).waitFor();
      const text = await page.locator("main, body").first().innerText();
      expect(text).toMatch(/#0 \w+ · flux\/schnell t2i · (high|normal|low)/);
      expect(text).not.toContain(SECRET_PROMPT);
      await page.screenshot({ path: screenshotPath("bull-board-scheduler.png") });
    } catch (err) {
      await page.screenshot({ path: screenshotPath("bull-board-failure.png") });
      throw err;
    } finally {
      await context.close();
    }
  });
});
