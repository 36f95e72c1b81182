// `render-gateway audit verify|receipt|rotate-key` (API.md §5, README "Audit log"): the offline tools of
// the audit log. They read DATA_DIR's files and the CAS only — no Redis, no running gateway.
import { readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { describeBadEntry, type NumberedCheckpoint } from "../core/audit-log-check.js";
import { checkpointProblem, type SignedCheckpoint } from "../core/checkpoint.js";
import { verifyReceipt } from "../core/receipt.js";
import { openAuditFiles } from "../infra/audit-files.js";
import { verifyAuditLog } from "../infra/audit-log-reader.js";
import { loadSettings } from "./settings.js";

export const AUDIT_USAGE = `  audit verify [--data-dir D] [--jwks FILE] [--checkpoint FILE] [--json]
                                   verify the whole audit log offline; names the first bad entry
  audit receipt FILE [--jwks FILE] [--data-dir D]
                                   verify one receipt with only the public key(s)
  audit rotate-key [--data-dir D]  sign new checkpoints with a new key (old ones keep verifying)
`;

/** Where the command writes. */
export interface AuditOutput {
  out(text: string): void;
  err(text: string): void;
}

const processOutput: AuditOutput = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/** Receipts, key sets and checkpoint files larger than this are refused before they are read. */
const MAX_INPUT_BYTES = 4 * 1024 * 1024;

/** The JSON of a file the user named, bounded. */
async function readJsonFile(path: string, what: string): Promise<unknown> {
  const st = await stat(path);
  if (st.size > MAX_INPUT_BYTES) throw new Error(`${what} ${path} is larger than ${MAX_INPUT_BYTES} bytes`);
  const text = await readFile(path, "utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${what} ${path} is not JSON`);
  }
}

/** Checkpoints from a file: one checkpoint object, an array of them, or one per line. */
async function readCheckpointFile(path: string): Promise<NumberedCheckpoint[]> {
  const st = await stat(path);
  if (st.size > MAX_INPUT_BYTES)
    throw new Error(`checkpoint file ${path} is larger than ${MAX_INPUT_BYTES} bytes`);
  const text = (await readFile(path, "utf8")).trim();
  let values: unknown[];
  try {
    const whole = JSON.parse(text) as unknown;
    values = Array.isArray(whole) ? whole : [whole];
  } catch {
    values = text.split("\n").map((line, i) => {
      try {
        return JSON.parse(line) as unknown;
      } catch {
        throw new Error(`checkpoint file ${path} line ${i + 1} is not JSON`);
      }
    });
  }
  return values.map((v, i) => {
    const problem = checkpointProblem(v);
    if (problem !== undefined) throw new Error(`checkpoint file ${path} entry ${i + 1}: ${problem}`);
    return { label: `${path}:${i + 1}`, checkpoint: v as SignedCheckpoint };
  });
}

/** --data-dir, else DATA_DIR as every command reads it. */
function dataDirOf(flag: string | undefined): string {
  return flag === undefined ? loadSettings().dataDir : resolve(flag);
}

/**
 * Runs `audit <sub> …`.
 * @returns the exit code: 0 verified, 1 the log or receipt does not verify, 2 a usage error.
 */
export async function runAuditCommand(
  args: readonly string[],
  io: AuditOutput = processOutput,
): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "verify": {
      const { values } = parseArgs({
        args: rest,
        options: {
          "data-dir": { type: "string" },
          jwks: { type: "string" },
          checkpoint: { type: "string", multiple: true },
          json: { type: "boolean", default: false },
        },
        strict: true,
      });
      const dataDir = dataDirOf(values["data-dir"]);
      const extra = (await Promise.all((values.checkpoint ?? []).map(readCheckpointFile))).flat();
      const report = await verifyAuditLog(dataDir, {
        ...(values.jwks === undefined ? {} : { jwks: await readJsonFile(values.jwks, "key set") }),
        checkpoints: extra,
      });
      if (values.json) {
        io.out(`${JSON.stringify(report)}\n`);
      } else {
        for (const note of report.notes) io.err(`note: ${note}\n`);
        const shape =
          `${report.leaves} leaves in ${report.segments} segments` +
          (report.segmentSize === undefined ? "" : ` of ${report.segmentSize}`) +
          `, ${report.checkpoints} checkpoints`;
        if (report.ok) io.out(`audit log verified: ${shape}\n`);
        else
          io.err(
            `audit log does NOT verify (${shape}); first bad entry: ${describeBadEntry(report.bad ?? { what: "?" })}\n`,
          );
      }
      return report.ok ? 0 : 1;
    }
    case "receipt": {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { jwks: { type: "string" }, "data-dir": { type: "string" } },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) {
        io.err(`audit receipt: give exactly one receipt file\n${AUDIT_USAGE}`);
        return 2;
      }
      const receipt = await readJsonFile(positionals[0] as string, "receipt");
      const jwks =
        values.jwks === undefined
          ? await openAuditFiles(dataDirOf(values["data-dir"])).jwks()
          : await readJsonFile(values.jwks, "key set");
      const verdict = await verifyReceipt(receipt, jwks);
      if (!verdict.ok) {
        io.err(`receipt does NOT verify: ${verdict.why}\n`);
        return 1;
      }
      const r = receipt as { record: { job_id: string }; leaf_index: number; checkpoint: SignedCheckpoint };
      io.out(
        `receipt verified: job ${r.record.job_id} is leaf ${r.leaf_index} of log ${r.checkpoint.log_id} ` +
          `(tree size ${r.checkpoint.tree_size}, checkpoint of ${r.checkpoint.timestamp}, key ${r.checkpoint.key_id})\n`,
      );
      return 0;
    }
    case "rotate-key": {
      const { values } = parseArgs({ args: rest, options: { "data-dir": { type: "string" } }, strict: true });
      const flag = values["data-dir"];
      const settings = flag === undefined ? loadSettings() : undefined;
      // AUDIT_SIGNING_KEY, when this version's settings know it: a configured key is rotated there.
      const configured = (settings?.env as Readonly<Record<string, unknown>> | undefined)?.AUDIT_SIGNING_KEY;
      if (typeof configured === "string" && configured !== "") {
        io.err(
          "audit rotate-key: the signing key comes from AUDIT_SIGNING_KEY; set a new one there instead\n",
        );
        return 2;
      }
      const files = openAuditFiles(settings?.dataDir ?? resolve(flag ?? "."));
      const before = (await files.jwks()).keys.length;
      const kid = await files.rotateKey();
      io.out(`${kid}\n`);
      io.err(
        `audit rotate-key: checkpoints are now signed with key ${kid}; jwks.json keeps ${before} earlier key(s) ` +
          "(running appenders pick the new key up at their next checkpoint)\n",
      );
      return 0;
    }
    default:
      io.err(
        `${sub === undefined ? "audit: a subcommand is needed" : `audit: unknown subcommand "${sub}"`}\n${AUDIT_USAGE}`,
      );
      return 2;
  }
}
