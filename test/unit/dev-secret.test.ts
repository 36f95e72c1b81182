import { execFile } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadOrCreateDevSecret } from "../../src/infra/dev-secret.js";

const run = promisify(execFile);
const MODULE = resolve("src/infra/dev-secret.ts");

let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "rg-dev-secret-"));
});
afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

const secretPath = (): string => join(dataDir, "secrets", "dev-secret");
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** A separate Node process that waits until `startAt` (ms) and then loads the secret. */
async function loadInChild(startAt: number): Promise<string> {
  const script = `
    const { loadOrCreateDevSecret } = await import(${JSON.stringify(MODULE)});
    while (Date.now() < ${startAt}) await new Promise((r) => setTimeout(r, 1));
    const secret = await loadOrCreateDevSecret(process.argv[1]);
    process.stdout.write(Buffer.from(secret).toString("hex"));
  `;
  const { stdout } = await run(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script, dataDir],
    {
      timeout: 20_000,
    },
  );
  return stdout;
}

describe("loadOrCreateDevSecret", () => {
  it("creates 32 random bytes, hex-encoded, in a 0600 file under a 0700 directory", async () => {
    const secret = await loadOrCreateDevSecret(dataDir);
    expect(secret).toBeInstanceOf(Uint8Array);
    expect(secret.byteLength).toBe(32);
    expect(statSync(secretPath()).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "secrets")).mode & 0o777).toBe(0o700);
    expect(readFileSync(secretPath(), "latin1")).toBe(`${hex(secret)}\n`);
  });

  it("returns the same secret on every later call", async () => {
    const first = await loadOrCreateDevSecret(dataDir);
    const second = await loadOrCreateDevSecret(dataDir);
    expect(hex(second)).toBe(hex(first));
    expect(hex(await loadOrCreateDevSecret(join(dataDir, ".")))).toBe(hex(first));
  });

  it("gives five concurrent callers one secret", async () => {
    const secrets = await Promise.all(Array.from({ length: 5 }, () => loadOrCreateDevSecret(dataDir)));
    expect(new Set(secrets.map(hex)).size).toBe(1);
    expect(readFileSync(secretPath(), "latin1").trim()).toBe(hex(secrets[0]!));
  });

  it("gives two processes started at once one secret", async () => {
    const startAt = Date.now() + 2500; // both children are loaded and waiting by then
    const [a, b] = await Promise.all([loadInChild(startAt), loadInChild(startAt)]);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(hex(await loadOrCreateDevSecret(dataDir))).toBe(a);
  });

  it("waits for a file that another process has created but not yet written", async () => {
    mkdirSync(join(dataDir, "secrets"), { mode: 0o700 });
    writeFileSync(secretPath(), "", { mode: 0o600 });
    const content = "ab".repeat(32);
    const loading = loadOrCreateDevSecret(dataDir);
    setTimeout(() => void appendFile(secretPath(), `${content}\n`), 100);
    expect(hex(await loading)).toBe(content);
  });

  it("gives up on a file that stays empty, naming it", async () => {
    mkdirSync(join(dataDir, "secrets"), { mode: 0o700 });
    writeFileSync(secretPath(), "", { mode: 0o600 });
    await expect(loadOrCreateDevSecret(dataDir, { waitMs: 50 })).rejects.toThrow(
      /still incomplete.*delete it/,
    );
  });

  it.each([0o640, 0o604, 0o644, 0o660, 0o610])("refuses a file with mode %o", async (mode) => {
    const secret = await loadOrCreateDevSecret(dataDir);
    chmodSync(secretPath(), mode);
    const err: unknown = await loadOrCreateDevSecret(dataDir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(secretPath());
    expect((err as Error).message).toContain("chmod 600");
    expect((err as Error).message).not.toContain(hex(secret));
  });

  it("refuses malformed content", async () => {
    mkdirSync(join(dataDir, "secrets"), { mode: 0o700 });
    writeFileSync(secretPath(), "not a secret at all\n", { mode: 0o600 });
    await expect(loadOrCreateDevSecret(dataDir)).rejects.toThrow(/malformed/);
  });

  it("refuses a symlink in place of the file", async () => {
    mkdirSync(join(dataDir, "secrets"), { mode: 0o700 });
    const elsewhere = join(dataDir, "elsewhere");
    writeFileSync(elsewhere, `${"cd".repeat(32)}\n`, { mode: 0o600 });
    symlinkSync(elsewhere, secretPath());
    await expect(loadOrCreateDevSecret(dataDir)).rejects.toThrow(/symbolic link/);
  });
});
