// The render-gateway command line: start, token, keys, audit, sim-backend (API.md §5).
import { parseArgs } from "node:util";
import { systemClock } from "./core/time.js";
import { parseTtl, signToken } from "./api/auth.js";
import { DEFAULT_TIER } from "./core/tiers.js";
import { createLogger } from "./infra/logger.js";
import { loadKeys, loadSettings } from "./main/settings.js";
import { parseRoles, runStart } from "./main/start.js";
import { createRuntime } from "./main/runtime.js";
import { KEYS_USAGE, runKeysCommand } from "./main/keys-command.js";
import { AUDIT_USAGE, runAuditCommand } from "./main/audit-command.js";

const USAGE = `usage: render-gateway <command>

  start [--roles api,worker,sim]   run the gateway (default: every role) on embedded defaults
  token --customer ID [--tier T] [--scope admin] [--ttl 1h]
                                   print an access token signed with JWT_SECRET or the dev secret
${KEYS_USAGE}${AUDIT_USAGE}  reconcile --from <RFC3339> --to <RFC3339>
                                   compare ledger, audit log and analytics over the window; prints the
                                   signed report (exit 0: they agree, 3: flagged)
  sim-backend                      run the simulated GPU backend alone (SIM_PORT, default 8001)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "start": {
      const { values } = parseArgs({ args: rest, options: { roles: { type: "string" } }, strict: true });
      await runStart(parseRoles(values.roles));
      return -1; // keep running until a signal
    }
    case "token": {
      const { values } = parseArgs({
        args: rest,
        options: {
          customer: { type: "string" },
          tier: { type: "string" },
          scope: { type: "string" },
          ttl: { type: "string", default: "1h" },
        },
        strict: true,
      });
      if (!values.customer) throw new Error("token: --customer is required");
      if (values.scope !== undefined && values.scope !== "admin")
        throw new Error("token: --scope takes only admin");
      const settings = loadSettings();
      // The tiers table (TIERS_FILE or the built-in one) says which tiers exist.
      const tiers = Object.keys(settings.tiers);
      const tier = values.tier ?? DEFAULT_TIER;
      if (!tiers.includes(tier)) throw new Error(`token: --tier must be one of ${tiers.join(", ")}`);
      const ttlS = parseTtl(values.ttl);
      if (ttlS > settings.env.JWT_MAX_TTL_S) {
        throw new Error(
          `token: --ttl ${values.ttl} (${ttlS} s) is longer than JWT_MAX_TTL_S (${settings.env.JWT_MAX_TTL_S} s); ` +
            "the API would refuse the token",
        );
      }
      const keys = await loadKeys(settings);
      if (keys.jwt === undefined) {
        throw new Error(
          "token: this deployment takes no HS256 tokens (JWT_PUBLIC_KEYS or JWKS_URL is set, JWT_SECRET is not): " +
            "tokens come from your identity provider, and `render-gateway keys create` makes API keys",
        );
      }
      const token = await signToken({
        secret: keys.jwt,
        customerId: values.customer,
        tier,
        tiers,
        admin: values.scope === "admin",
        ttlS,
        clock: systemClock,
        ...(settings.env.JWT_ISSUER ? { issuer: settings.env.JWT_ISSUER } : {}),
        ...(settings.env.JWT_AUDIENCE ? { audience: settings.env.JWT_AUDIENCE } : {}),
      });
      process.stdout.write(`${token}\n`);
      return 0;
    }
    case "keys":
      return runKeysCommand(rest);
    case "reconcile": {
      // loaded on demand: the analytics client is not every command's
      const { runReconcileCommand } = await import("./main/reconcile-command.js");
      return runReconcileCommand(rest);
    }
    case "audit":
      return runAuditCommand(rest);
    case "sim-backend": {
      const settings = loadSettings();
      const logger = createLogger({ level: settings.env.LOG_LEVEL });
      const runtime = createRuntime(logger);
      runtime.handleSignals((code) => process.exit(code));
      const { startSimRole } = await import("./main/sim-role.js");
      const sim = await startSimRole({
        env: settings.env,
        dataDir: settings.dataDir,
        runtime,
        logger,
        defaultPort: 8001,
      });
      process.stdout.write(`simulated GPU backend listening on ${sim.url}\n`);
      return -1;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    console.error(`render-gateway: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
