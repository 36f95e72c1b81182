// STAND-IN (audit-pipeline branch) for audit-core's DATA_DIR/audit files, written to the shared
// design's interface so the appender can run before audit-core's version is merged; the merge takes
// audit-core's file in place of this one.
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { publicJwk, publicKeyOf, type Jwk, type SignedCheckpoint } from "../core/checkpoint.js";

export interface AuditFiles {
  readonly dir: string;
  logId(): Promise<string>;
  signingKey(): Promise<{ kid: string; seed: Uint8Array; publicKey: Uint8Array }>;
  jwks(): Promise<{ keys: Jwk[] }>;
  rotateKey(): Promise<string>;
  appendIndex(lines: readonly { segment: number; digest: string; count: number }[]): Promise<void>;
  readIndex(): Promise<Map<number, { digest: string; count: number }>>;
  appendCheckpoint(cp: SignedCheckpoint): Promise<void>;
  readCheckpoints(): Promise<SignedCheckpoint[]>;
}

const readText = (path: string) => readFile(path, "utf8").catch(() => undefined);

async function appendSynced(path: string, text: string): Promise<void> {
  const handle = await open(path, "a", 0o600);
  try {
    await handle.appendFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function openAuditFiles(
  dataDir: string,
  opts: { signingKey?: string; logId?: string } = {},
): AuditFiles {
  const dir = join(dataDir, "audit");
  const keysDir = join(dir, "keys");
  const ready = async () => {
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
  };
  const lines = async (file: string) =>
    ((await readText(join(dir, file))) ?? "").split("\n").filter((l) => l !== "");

  async function addJwk(publicKey: Uint8Array): Promise<Jwk> {
    const jwk = await publicJwk(publicKey);
    const path = join(keysDir, "jwks.json");
    const current = JSON.parse((await readText(path)) ?? '{"keys":[]}') as { keys: Jwk[] };
    if (!current.keys.some((k) => k.kid === jwk.kid)) {
      current.keys.push(jwk);
      await writeFile(path, JSON.stringify(current));
    }
    return jwk;
  }

  async function newKey(): Promise<string> {
    await ready();
    const seed = new Uint8Array(randomBytes(32));
    const jwk = await addJwk(await publicKeyOf(seed));
    await writeFile(join(keysDir, `${jwk.kid}.key`), Buffer.from(seed).toString("base64url"), {
      mode: 0o600,
    });
    await writeFile(join(keysDir, "current"), jwk.kid);
    return jwk.kid;
  }

  return {
    dir,
    async logId() {
      if (opts.logId !== undefined) return opts.logId;
      await ready();
      const path = join(dir, "log-id");
      const existing = (await readText(path))?.trim();
      if (existing) return existing;
      const id = `rg-${randomBytes(8).toString("hex")}`;
      await writeFile(path, id, { flag: "wx" }).catch(() => undefined);
      return ((await readText(path)) ?? id).trim();
    },
    async signingKey() {
      await ready();
      let seed: Uint8Array;
      if (opts.signingKey !== undefined) {
        seed = new Uint8Array(Buffer.from(opts.signingKey, "base64url"));
      } else {
        let kid = (await readText(join(keysDir, "current")))?.trim();
        if (!kid) kid = await newKey();
        seed = new Uint8Array(
          Buffer.from((await readFile(join(keysDir, `${kid}.key`), "utf8")).trim(), "base64url"),
        );
      }
      const publicKey = await publicKeyOf(seed);
      const jwk = await addJwk(publicKey);
      return { kid: jwk.kid, seed, publicKey };
    },
    async jwks() {
      return JSON.parse((await readText(join(keysDir, "jwks.json"))) ?? '{"keys":[]}') as { keys: Jwk[] };
    },
    rotateKey: newKey,
    async appendIndex(entries) {
      if (entries.length === 0) return;
      await ready();
      await appendSynced(join(dir, "index.jsonl"), entries.map((e) => `${JSON.stringify(e)}\n`).join(""));
    },
    async readIndex() {
      const index = new Map<number, { digest: string; count: number }>();
      for (const line of await lines("index.jsonl")) {
        const e = JSON.parse(line) as { segment: number; digest: string; count: number };
        index.set(e.segment, { digest: e.digest, count: e.count });
      }
      return index;
    },
    async appendCheckpoint(cp) {
      await ready();
      await appendSynced(join(dir, "checkpoints.jsonl"), `${JSON.stringify(cp)}\n`);
    },
    async readCheckpoints() {
      return (await lines("checkpoints.jsonl")).map((l) => JSON.parse(l) as SignedCheckpoint);
    },
  };
}
