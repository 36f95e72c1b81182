// A TIERS_FILE with its own tier names: the CLI signs tokens for them, the API accepts them, and a
// built-in name the file does not define is an unknown tier (401), in the API and in the CLI.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signToken } from "../../src/api/auth.js";
import { DEFAULT_TIERS } from "../../src/core/tiers.js";
import { startSystem, TEST_SECRET, type TestSystem } from "../helpers/system.js";

const dir = mkdtempSync(join(tmpdir(), "rg-tiers-"));
const tiersFile = join(dir, "tiers.json");
writeFileSync(
  tiersFile,
  JSON.stringify({ free: DEFAULT_TIERS.free, gold: { ...DEFAULT_TIERS.pro, weight: 8 } }),
);

let sys: TestSystem;
beforeAll(async () => {
  sys = await startSystem({ worker: false, env: { TIERS_FILE: tiersFile } });
});
afterAll(async () => {
  await sys?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `render-gateway token …` as an operator runs it. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [resolve("bin/render-gateway.js"), ...args], {
      env: {
        PATH: process.env.PATH ?? "",
        DATA_DIR: join(dir, "data"),
        JWT_SECRET: TEST_SECRET,
        TIERS_FILE: tiersFile,
        LOG_LEVEL: "silent",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", fail);
    child.once("exit", (code) => done({ code, stdout, stderr }));
  });
}

describe("custom tiers", () => {
  it("the CLI signs a token for a tier the file defines, and the API accepts it", async () => {
    const out = await cli(["token", "--customer", "acme", "--tier", "gold"]);
    expect(out.code, out.stderr).toBe(0);
    const token = out.stdout.trim();
    expect(decodeJwt(token).tier).toBe("gold");
    const res = await sys.call("/models", { token });
    expect(res.status).toBe(200);
    // gold allows high priority, as its table entry says
    const queued = await sys.call("/queue", {
      method: "POST",
      token,
      body: JSON.stringify({
        modality: "image",
        family: "flux",
        model: "schnell",
        task: "t2i",
        prompt: "gold",
        priority: "high",
      }),
    });
    expect(queued.status).toBe(202);
  }, 20_000);

  it("the CLI refuses a tier the file does not define, naming the ones it does", async () => {
    const out = await cli(["token", "--customer", "acme", "--tier", "pro"]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("free, gold");
    expect(out.stdout).toBe("");
  }, 20_000);

  it("the API answers 401 for a built-in tier the file does not define", async () => {
    const pro = await signToken({
      secret: new TextEncoder().encode(TEST_SECRET),
      customerId: "acme",
      tier: "pro",
      ttlS: 600,
      clock: Date.now,
    });
    const res = await sys.call("/models", { token: pro });
    expect(res.status).toBe(401);
  });
});
