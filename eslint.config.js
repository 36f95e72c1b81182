// Lint: typescript-eslint with type information (needs TypeScript 5.9, see reference/dependencies.md).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

// One concept per file (STYLE.md habit 2): a source file holds at most 400 lines of code, blank lines
// and comments not counted. Data tables (files that only list values) are the exceptions, each named.
const MAX_LINES = 400;
const DATA_TABLES = ["src/core/catalog/tables.ts", "src/core/request-schema/fields.ts"];

export default tseslint.config(
  { ignores: ["node_modules/", "data/", "coverage/", "**/*.lua", ".dependency-cruiser.cjs"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true },
      ],
      "no-console": ["error", { allow: ["error"] }],
    },
  },
  {
    files: ["src/**/*.ts"],
    ignores: DATA_TABLES,
    rules: { "max-lines": ["error", { max: MAX_LINES, skipBlankLines: true, skipComments: true }] },
  },
  {
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "no-console": "off",
    },
  },
  {
    files: ["src/cli.ts", "src/main/**/*.ts"],
    rules: { "no-console": "off" },
  },
  {
    files: ["eslint.config.js", "bin/**/*.js", "bench/**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The playground's browser module (no build step, so no TypeScript): plain ESLint checks.
    files: ["public/**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ["public/**/*.js"],
    languageOptions: {
      sourceType: "module",
      globals: Object.fromEntries(
        [
          "AbortController",
          "document",
          "fetch",
          "FileReader",
          "Headers",
          "localStorage",
          "sessionStorage",
          "setTimeout",
          "TextDecoder",
          "URL",
        ].map((name) => [name, "readonly"]),
      ),
    },
  },
  {
    files: ["bench/**/*.mjs"],
    languageOptions: { globals: { process: "readonly", setInterval: "readonly" } },
  },
);
