// Dependency direction (DESIGN.md "Layout"): imports point inward; only src/main wires concrete parts.

/** Folders of core/ whose insides are reached only through the module of the same name beside them. */
const FOLDERS_WITH_A_FACE = ["catalog", "request-schema"];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: "no-cycles", severity: "error", from: {}, to: { circular: true } },
    {
      name: "core-is-pure",
      comment:
        "core/ has no I/O and imports nothing of ours outside core/ (pure libraries: zod, ipaddr.js, @noble/hashes, @noble/ed25519, canonicalize, jose)",
      severity: "error",
      from: { path: "^src/core/" },
      to: {
        pathNot:
          "^src/core/|(^|/)node_modules/(zod|ipaddr\\.js|@noble/hashes|@noble/ed25519|canonicalize|jose)/",
        dependencyTypesNot: ["type-only", "core"],
      },
    },
    {
      name: "core-no-io-builtins",
      severity: "error",
      from: { path: "^src/core/" },
      to: {
        dependencyTypes: ["core"],
        path: "^(fs|net|http|https|child_process|dgram|dns|tls|cluster|worker_threads)$",
      },
    },
    {
      name: "only-main-wires",
      comment: "nothing outside src/main and src/cli.ts imports src/main",
      severity: "error",
      from: { pathNot: "^src/(main/|cli\\.ts)" },
      to: { path: "^src/main/" },
    },
    {
      name: "layers-do-not-reach-outward",
      comment: "api, workers, pipeline, queues and sim do not import each other's insides or infra directly",
      severity: "error",
      from: { path: "^src/(api|workers|pipeline|queues|sim)/" },
      to: { path: "^src/(api|workers|pipeline|sim)/", pathNot: "^src/$1/" },
    },
    {
      name: "features-get-infra-injected",
      comment: "infra implements ports; features receive them as parameters from src/main",
      severity: "error",
      from: { path: "^src/(api|workers|pipeline|queues|sim)/" },
      to: { path: "^src/infra/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "only-main-mounts-admin",
      comment: "the admin face (src/admin) is wired by src/main; no other layer imports it",
      severity: "error",
      from: { pathNot: "^src/(main|admin)/" },
      to: { path: "^src/admin/" },
    },
    {
      name: "admin-reaches-only-inward",
      comment:
        "src/admin uses core, queues and the API's faces (auth types, problem documents, request helpers); never workers, pipeline, sim or infra",
      severity: "error",
      from: { path: "^src/admin/" },
      to: { path: "^src/(workers|pipeline|sim|infra)/", dependencyTypesNot: ["type-only"] },
    },
    {
      name: "infra-does-not-import-features",
      severity: "error",
      from: { path: "^src/infra/" },
      to: { path: "^src/(api|workers|pipeline|queues|sim|main)/" },
    },
    {
      name: "config-is-leaf",
      severity: "error",
      from: { path: "^src/config/" },
      to: { path: "^src/(api|workers|pipeline|queues|sim|main|infra)/" },
    },
    ...FOLDERS_WITH_A_FACE.map((folder) => ({
      name: `${folder}-through-${folder}.ts`,
      comment: `outside src/core/${folder}/, its modules are reached through src/core/${folder}.ts`,
      severity: "error",
      from: { pathNot: `^src/core/${folder}(/|\\.ts$)` },
      to: { path: `^src/core/${folder}/` },
    })),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
    },
  },
};
