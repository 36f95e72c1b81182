// The API reference in a real browser (Debian's Chromium) with every request outside the gateway's
// origin blocked: /docs renders the operations from /openapi.json with only the gateway's own files,
// tries to reach nothing else, and breaks none of its Content-Security-Policy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { launchBrowser, screenshotPath } from "../helpers/browser.js";
import { startSystem, type TestSystem } from "../helpers/system.js";

let sys: TestSystem;
let browser: Browser | undefined;

beforeAll(async () => {
  sys = await startSystem({ worker: false });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await sys?.close();
});

describe("/docs in a browser with no internet", () => {
  it("renders the operations from the gateway's own files, breaking no CSP rule", async () => {
    const origin = new URL(sys.url).origin;
    const context = await browser!.newContext();
    try {
      const page = await context.newPage();
      const outside: string[] = [];
      const served: string[] = [];
      await page.route("**/*", async (route) => {
        const url = route.request().url();
        if (new URL(url).origin === origin) {
          served.push(new URL(url).pathname);
          await route.continue();
        } else {
          outside.push(url);
          await route.abort("internetdisconnected");
        }
      });
      // CSP violations are reported as DOM events: collect them from the start of the page.
      // (page code as text: the test project compiles without the DOM library)
      await page.addInitScript({
        content: `window.cspViolations = [];
          document.addEventListener("securitypolicyviolation", (e) => {
            window.cspViolations.push(e.violatedDirective + " " + e.blockedURI);
          });`,
      });
      const errors: string[] = [];
      page.on("pageerror", (err) => errors.push(err.message));

      const res = await page.goto(`${sys.url}/docs`);
      expect(res?.status()).toBe(200);
      // An operation's summary, a path and a tag, as Swagger UI renders them from the document.
      await page.getByText("queue generation job").first().waitFor({ timeout: 20_000 });
      await expect(page.getByText("/jobs/{id}/events").first().isVisible()).resolves.toBe(true);
      await expect(
        page.locator(".opblock-tag", { hasText: "async-queue" }).first().isVisible(),
      ).resolves.toBe(true);
      await expect(page.locator(".opblock").count()).resolves.toBeGreaterThan(30);
      await page.locator(".opblock-tag", { hasText: "sync-video" }).first().scrollIntoViewIfNeeded();
      await page.screenshot({ path: screenshotPath("docs.png"), fullPage: false });

      // An operation opens with its parameters and its responses, problem documents among them.
      await page.locator(".opblock-summary", { hasText: "queue generation job" }).first().click();
      await page.getByText("Idempotency-Key").first().waitFor();
      await expect(page.getByText("Queue full").first().isVisible()).resolves.toBe(true);

      expect(outside).toEqual([]);
      expect(served).toEqual(
        expect.arrayContaining([
          "/docs",
          "/docs/swagger-ui.css",
          "/docs/swagger-ui-bundle.js",
          "/docs/docs.js",
          "/openapi.json",
        ]),
      );
      expect(await page.evaluate("window.cspViolations")).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
