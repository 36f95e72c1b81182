// The original API spec, docs/reference/render.openapi.json (the repository's copy): the tests check
// the catalogue and the request schemas against its examples.
import { readFileSync } from "node:fs";

/** The parsed spec; arbitrary JSON that the tests index into freely. */
export function loadSpec(): any {
  return JSON.parse(
    readFileSync(new URL("../../docs/reference/render.openapi.json", import.meta.url), "utf8"),
  );
}
