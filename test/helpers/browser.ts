// Headless Chromium for browser tests: Debian's `chromium` from the PATH, driven by playwright-core
// (which downloads no browser of its own). Screenshots go under test-output/ (not committed).
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { PROJECT_ROOT } from "./processes.js";

/** Where browser tests save their screenshots. */
export const TEST_OUTPUT_DIR = join(PROJECT_ROOT, "test-output");

/** The chromium binary on the PATH (`.ci/run` installs Debian's package when it is missing). */
export function chromiumPath(): string {
  const found = execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], {
    encoding: "utf8",
  }).trim();
  if (!found) throw new Error("chromium is not on the PATH (apt-get install chromium)");
  return found;
}

/** A headless browser; the caller closes it. */
export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // The test machines run as root in containers without a user namespace sandbox.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/** The path of a screenshot file under the test output folder (the folder is created). */
export function screenshotPath(name: string): string {
  mkdirSync(TEST_OUTPUT_DIR, { recursive: true });
  return join(TEST_OUTPUT_DIR, name);
}
