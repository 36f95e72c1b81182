// What a GPU backend is sent for an input image: the bytes from the CAS, never a customer's URL.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createFsBlobStore } from "../../src/infra/fs-blob-store.js";
import { classify } from "../../src/workers/failure-policy.js";
import { buildInferRequest, InputUrlRefusedError } from "../../src/workers/infer-request.js";
import { dataUri, solidPng } from "../helpers/images.js";

const dir = mkdtempSync(join(tmpdir(), "rg-infer-"));
const blobs = createFsBlobStore({ root: join(dir, "cas") });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const attempt = (request: Record<string, unknown>) => ({
  id: "j_00000000000000000000",
  modality: "image",
  task: "i2i",
  seed: 1,
  request: { prompt: "p", ...request },
});

function structured(req: Awaited<ReturnType<typeof buildInferRequest>>): Record<string, unknown> {
  const input = req.inputs.find((i) => i.name === "request");
  return JSON.parse(String(input?.data[0])) as Record<string, unknown>;
}

describe("input images in the infer request", () => {
  it("sends a stored image as its bytes", async () => {
    const png = await solidPng("#123");
    const digest = await blobs.put(png);
    const req = await buildInferRequest(attempt({ image: { kind: "digest", digest } }), blobs);
    expect(structured(req).image).toBe(dataUri("image/png", png));
  });

  it("never passes a stored customer URL on: the job fails, not retriable", async () => {
    const legacy = attempt({ image: { kind: "url", url: "https://images.example.com/a.png" } });
    const err = await buildInferRequest(legacy, blobs).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputUrlRefusedError);
    expect(classify(err)).toMatchObject({
      outcome: "failed",
      error: { code: "input_refused", retriable: false },
    });
    expect((err as Error).message).not.toContain("images.example.com");
  });
});
