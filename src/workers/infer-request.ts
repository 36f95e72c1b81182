// Builds the KServe v2 infer request of an attempt from the stored, validated job request.
import type { BlobStore } from "../core/ports.js";
import { sniffContentType } from "../core/media-type.js";
import type { InferRequest, InferTensor } from "./backends/kserve-client.js";

const STRUCTURED = new Set(["prompt", "negative_prompt", "image", "mask", "lora"]);

export interface AttemptInput {
  readonly id: string;
  readonly modality: string;
  readonly task: string;
  readonly seed: number;
  readonly request: Readonly<Record<string, unknown>>;
}

/** An input image of the job is not (or no longer) in the CAS: the request cannot run anywhere. */
export class InputMissingError extends Error {
  constructor(readonly digest: string) {
    super(`input object ${digest} is missing from storage`);
    this.name = "InputMissingError";
  }
}

/**
 * A job stored before the gateway fetched input images itself holds the customer's URL. It is never
 * passed on (the backend would fetch it from inside the network): the job fails instead.
 */
export class InputUrlRefusedError extends Error {
  constructor() {
    super("the job's input image is an external URL, which is no longer sent to backends; submit it again");
    this.name = "InputUrlRefusedError";
  }
}

type ImageRef = { kind: "digest"; digest: string } | { kind: "url"; url: string };

function isImageRef(v: unknown): v is ImageRef {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    (r.kind === "digest" && typeof r.digest === "string") || (r.kind === "url" && typeof r.url === "string")
  );
}

/** An input image as the backend gets it: its bytes as a data URI (from the CAS), never a URL. */
async function resolveImage(ref: unknown, blobs: BlobStore): Promise<string | undefined> {
  if (!isImageRef(ref)) return undefined;
  if (ref.kind === "url") throw new InputUrlRefusedError();
  const bytes = await blobs.get(ref.digest);
  if (!bytes) throw new InputMissingError(ref.digest);
  return `data:${sniffContentType(bytes)};base64,${Buffer.from(bytes).toString("base64")}`;
}

/**
 * Scalars go to `parameters`, the prompt to a BYTES input `prompt`, structured fields to a BYTES input
 * `request` holding JSON (API.md §4): `lora`, and `image`/`mask` as a `data:` URI.
 * @throws InputMissingError when an input object is gone; InputUrlRefusedError for a stored URL ref.
 */
export async function buildInferRequest(input: AttemptInput, blobs: BlobStore): Promise<InferRequest> {
  const parameters: Record<string, string | number | boolean> = {
    modality: input.modality,
    task: input.task,
    seed: input.seed,
  };
  for (const [k, v] of Object.entries(input.request)) {
    if (STRUCTURED.has(k)) continue;
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") parameters[k] = v;
  }
  const inputs: InferTensor[] = [
    {
      name: "prompt",
      datatype: "BYTES",
      shape: [1],
      data: [typeof input.request.prompt === "string" ? input.request.prompt : ""],
    },
  ];
  if (typeof input.request.negative_prompt === "string") {
    inputs.push({
      name: "negative_prompt",
      datatype: "BYTES",
      shape: [1],
      data: [input.request.negative_prompt],
    });
  }
  const structured: Record<string, unknown> = {};
  const image = await resolveImage(input.request.image, blobs);
  if (image) structured.image = image;
  const mask = await resolveImage(input.request.mask, blobs);
  if (mask) structured.mask = mask;
  if (Array.isArray(input.request.lora) && input.request.lora.length > 0)
    structured.lora = input.request.lora;
  if (Object.keys(structured).length > 0) {
    inputs.push({ name: "request", datatype: "BYTES", shape: [1], data: [JSON.stringify(structured)] });
  }
  return { id: input.id, parameters, inputs };
}
