// The playground at `/`, end to end in headless Chromium (Debian's, driven by playwright-core):
// a customer pastes a token, generates an image and a video and watches them progress and preview
// live, sees the image load and the video play, cancels a waiting job (its position shown) and a
// running one, and finds every job in the recent list; a bad token, entered by keyboard alone,
// shows the problem document's words. The whole system runs (API, worker, simulated backend with
// real PNG and H.264 output). Saves test-output/playground.png (the README's screenshot).
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, screenshotPath } from "../helpers/browser.js";
import { solidPng } from "../helpers/images.js";
import { startSystem, type TestSystem } from "../helpers/system.js";

/** Per diffusion step: slow enough that progress and previews show, fast enough for a short test. */
const STEP_MS = 120;

let sys: TestSystem;
let browser: Browser;

beforeAll(async () => {
  // One backend slot for flux/schnell and one for wan/default: a second flux job waits its turn.
  const gpu = (url: string, id: string, engine: "nunchaku" | "torch", model: string) => ({
    id,
    url,
    protocol: "kserve-v2" as const,
    engine,
    capacity: 1,
    models: [model],
    streaming: true,
    timeout_ms: 120_000,
    timeouts: {},
  });
  sys = await startSystem({
    env: { SIM_STEP_MS: String(STEP_MS) },
    backends: (url) => [
      gpu(url, "gpu-image", "nunchaku", "flux/schnell"),
      gpu(url, "gpu-video", "torch", "wan/default"),
    ],
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await sys?.close();
});

/** Polls until the value matches; the deadline is for a loaded machine, never a measurement. */
const poll = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 20_000 });

/** A page at 1280×900 whose console errors and refused requests (CSP included) are collected. */
async function openPlayground(): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(msg.text());
  });
  page.on("pageerror", (err) => problems.push(String(err)));
  await page.goto(`${sys.url}/`);
  return { page, problems };
}

// The page's globals, for the functions that run in the browser: this file is type-checked without
// the DOM library (and the page's CSP refuses strings evaluated as code).
declare const document: any;
declare const window: any;
declare const localStorage: any;

/** Waits until the first image matching `selector` has loaded and is `width` pixels wide. */
async function imageLoaded(page: Page, selector: string, width: number): Promise<void> {
  await page.waitForFunction(
    ([sel, w]) => {
      const img = document.querySelector(sel);
      return img !== null && img.complete && img.naturalWidth === w;
    },
    [selector, width] as const,
  );
}

/** The state text of a job in the recent list. */
function recentState(page: Page, id: string) {
  return page.locator(`#recent li[data-job-id="${id}"] .state`);
}

async function submit(
  page: Page,
  o: { model: string; task: string; format: string; prompt: string; steps: number; duration?: number },
): Promise<string> {
  await page.getByLabel("Model").selectOption(o.model);
  await page.getByLabel("Task").selectOption(o.task);
  await page.getByLabel("Format").selectOption(o.format);
  await page.getByLabel("Prompt", { exact: true }).fill(o.prompt);
  if ((await page.locator("details[open]").count()) === 0) await page.getByText("More settings").click();
  await page.getByLabel("Steps").fill(String(o.steps));
  if (o.duration !== undefined) await page.getByLabel("Duration (seconds)").fill(String(o.duration));
  const before = await page.locator("#job-id").textContent();
  await page.getByRole("button", { name: "Generate" }).click();
  await poll(() => page.locator("#job-id").textContent()).not.toBe(before);
  const id = (await page.locator("#job-id").textContent()) ?? "";
  expect(id).toMatch(/^j_[A-Za-z0-9]{20,}$/);
  return id;
}

describe("the playground", () => {
  it("serves the page publicly with a strict Content-Security-Policy", async () => {
    const res = await fetch(`${sys.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    const script = await fetch(`${sys.url}/playground/app.js`);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    await script.arrayBuffer();
    expect(await res.text()).toContain('src="playground/app.js"');
  });

  it("generates an image and a video live, cancels a waiting and a running job, lists them all", async () => {
    const { page, problems } = await openPlayground();
    const token = await sys.token("cust");
    await page.getByLabel("Token or API key").fill(token);
    await page.getByRole("button", { name: "Load models" }).click();
    await poll(() => page.locator("#model option").allTextContents()).toContain("flux/schnell");

    // An image: queued, then progress and previews as it forms, then the PNG itself.
    const imageId = await submit(page, {
      model: "image/flux/schnell",
      task: "t2i",
      format: "512",
      prompt: "a lighthouse at dawn, watercolor",
      steps: 12,
    });
    await page.waitForFunction(() => document.querySelector("#progress").value > 0);
    await imageLoaded(page, "#preview-box:not([hidden]) img", 64);
    await imageLoaded(page, "#result img", 512);
    await poll(() => page.locator("#status").textContent()).toMatch(/^Complete/);
    expect(await page.locator("#job-state").textContent()).toBe("complete");
    expect(await recentState(page, imageId).textContent()).toBe("complete");
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: screenshotPath("playground.png") });

    // An image from an image: the picked file goes inline as a data: URI.
    await page.getByLabel("Model").selectOption("image/flux/schnell");
    await page.getByLabel("Task").selectOption("i2i");
    await page
      .getByLabel(/^Input image/)
      .setInputFiles({ name: "input.png", mimeType: "image/png", buffer: await solidPng("#3366cc", 64) });
    const i2iId = await submit(page, {
      model: "image/flux/schnell",
      task: "i2i",
      format: "512",
      prompt: "the same, at night",
      steps: 4,
    });
    await poll(() => recentState(page, i2iId).textContent()).toBe("complete");
    await imageLoaded(page, "#result img", 512);
    const i2i = (await (await sys.call(`/jobs/${i2iId}?redirect=false`, { token })).json()) as {
      request: { image?: unknown };
    };
    expect(i2i.request.image).toEqual(expect.any(String));

    // A video: an H.264 MP4 that Chromium loads and knows the length of.
    const videoId = await submit(page, {
      model: "video/wan/default",
      task: "t2v",
      format: "square",
      prompt: "waves rolling onto a beach",
      steps: 4,
      duration: 1,
    });
    const meta = await page.waitForFunction(
      () => {
        const v = document.querySelector("#result video");
        if (!v) return undefined;
        if (v.error) return { error: v.error.code, message: v.error.message };
        return v.readyState >= 1 && v.duration > 0
          ? { duration: v.duration, width: v.videoWidth }
          : undefined;
      },
      undefined,
      { timeout: 20_000 },
    );
    expect(await meta.jsonValue()).toEqual({ duration: expect.closeTo(1, 1), width: 640 });
    // and it plays: frames decode and time runs
    await page.evaluate(() => {
      const v = document.querySelector("#result video");
      v.muted = true;
      return v.play();
    });
    await page.waitForFunction(() => document.querySelector("#result video").currentTime > 0);
    expect(await recentState(page, videoId).textContent()).toBe("complete");

    // A job that would run for minutes holds flux's only backend slot, so the next one waits at
    // position 0. The waiting one is cancelled from the job panel, the running one from the list.
    sys.sim.setConfig({ stepMs: 60_000 });
    const slowId = await submit(page, {
      model: "image/flux/schnell",
      task: "t2i",
      format: "512",
      prompt: "a slow one",
      steps: 20,
    });
    await poll(() => page.locator("#job-state").textContent()).toBe("running");
    const waitingId = await submit(page, {
      model: "image/flux/schnell",
      task: "t2i",
      format: "512",
      prompt: "waits its turn",
      steps: 4,
    });
    await poll(() => page.locator("#job-position").textContent()).toBe("next to start");
    expect(await page.locator("#job-state").textContent()).toBe("queued");
    await page.getByRole("button", { name: "Cancel this job" }).click();
    await poll(() => page.locator("#job-state").textContent()).toBe("cancelled");
    expect(await recentState(page, waitingId).textContent()).toBe("cancelled");
    expect(await page.locator("#status").textContent()).toBe(`Cancelled job ${waitingId}.`);
    await page.getByRole("button", { name: `Cancel job ${slowId}` }).click();
    await poll(() => recentState(page, slowId).textContent()).toBe("cancelled");
    // the backend call was aborted, not left to run
    await poll(() => sys.sim.stats().active).toBe(0);
    sys.sim.setConfig({ stepMs: STEP_MS });
    for (const id of [slowId, waitingId]) {
      const res = await sys.call(`/jobs/${id}`, { token });
      expect(((await res.json()) as { status: string }).status).toBe("cancelled");
    }

    // Every job is in the recent list, newest first; Show replays a finished one.
    const listed = await Promise.all(
      (await page.locator("#recent li").all()).map((li) => li.getAttribute("data-job-id")),
    );
    expect(listed).toEqual([waitingId, slowId, videoId, i2iId, imageId]);
    await page.getByRole("button", { name: `Show job ${imageId}` }).click();
    await imageLoaded(page, "#result img", 512);
    // The token went only into headers and this tab's session storage.
    expect(page.url()).not.toContain(token);
    expect(await page.evaluate(() => Object.keys(localStorage))).toEqual(["render-gateway.recent"]);
    expect(problems).toEqual([]);

    // Phone width: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 360, height: 800 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
    await page.screenshot({ path: screenshotPath("playground-360.png"), fullPage: true });
    await page.context().close();
  }, 120_000);

  it("shows a bad token's problem as readable words", async () => {
    const { page } = await openPlayground();
    // by keyboard alone: type the token, Tab past the checkbox to the button, press it
    await page.getByLabel("Token or API key").focus();
    await page.keyboard.type("not-a-token");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement.id)).toBe("load-models");
    await page.keyboard.press("Enter");
    const alert = page.getByRole("alert");
    await poll(() => alert.isVisible()).toBe(true);
    expect(await alert.textContent()).toMatch(/^Unauthorized: .+ \(code: unauthorized\)$/);
    expect(await page.getByLabel("Model").isDisabled()).toBe(true);
    await page.context().close();
  });
});
