// The WebSocket protocol's client messages (README "WebSocket (/ws)"): each text frame is one JSON
// object with a `type`. Parsed here with every field bounded before any work that grows with it; the
// structure of the JSON is bounded as an HTTP body's is (core/json-scan.ts) before JSON.parse.
import { AppError, validationError } from "../../core/errors.js";
import { JsonScan } from "../../core/json-scan.js";
import { JOB_ID_MAX_CHARS, JSON_BODY_LIMITS, ROUTE_PART_MAX_CHARS } from "../../core/request-limits.js";

/** Longest client-chosen message `id` (echoed in every server message about it). */
export const CLIENT_ID_MAX_CHARS = 128;
/** Longest `token` of an `auth` message (auth.ts refuses longer `Authorization` headers anyway). */
export const TOKEN_MAX_CHARS = 8192;

export type ClientMessage =
  | { readonly type: "auth"; readonly token: string; readonly id?: string }
  | {
      readonly type: "generate";
      readonly id: string;
      /** The `POST /queue` body: `request` with the routing members given beside it. */
      readonly body: Readonly<Record<string, unknown>>;
    }
  | { readonly type: "cancel"; readonly jobId: string; readonly id?: string }
  | { readonly type: "subscribe"; readonly jobId: string; readonly id?: string }
  | { readonly type: "ping"; readonly id?: string };

export type ClientMessageType = ClientMessage["type"];

const ROUTING = ["modality", "family", "model", "task"] as const;

/** Members each type may carry besides `type` and `id`. */
const MEMBERS: Readonly<Record<ClientMessageType, readonly string[]>> = {
  auth: ["token"],
  generate: [...ROUTING, "request"],
  cancel: ["job_id"],
  subscribe: ["job_id"],
  ping: [],
};

const isType = (t: unknown): t is ClientMessageType => typeof t === "string" && Object.hasOwn(MEMBERS, t);

/**
 * The JSON object of one text message (already at most WS_MAX_MESSAGE_BYTES long).
 * @throws AppError 400 `invalid_json` (not JSON, or not an object), `validation_error` for a broken
 *   structure bound (as an HTTP body, `details.constraint`).
 */
export function parseJsonMessage(data: Uint8Array): Record<string, unknown> {
  new JsonScan(JSON_BODY_LIMITS).push(data);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8"));
  } catch (err) {
    throw new AppError("invalid_json", `the message is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AppError("invalid_json", "a message must be a JSON object with a type");
  }
  return value as Record<string, unknown>;
}

/**
 * The client's `id` of a message, when it is a usable one: errors about the message echo it.
 * Undefined for a missing or malformed one.
 */
export function clientIdOf(msg: Readonly<Record<string, unknown>>): string | undefined {
  const id = msg["id"];
  return typeof id === "string" && id.length >= 1 && id.length <= CLIENT_ID_MAX_CHARS ? id : undefined;
}

function boundedString(msg: Readonly<Record<string, unknown>>, field: string, max: number): string {
  const v = msg[field];
  if (v === undefined || v === null) throw validationError(field, "required", `${field} is required`);
  if (typeof v !== "string") throw validationError(field, "type", `${field} must be a string`);
  if (v.length < 1 || v.length > max) {
    throw validationError(field, "max_length", `${field} must have 1-${max} characters`);
  }
  return v;
}

/**
 * Reads a message object into a {@link ClientMessage}.
 * @throws AppError 400 `validation_error` with `details.field`: `type` (missing or unknown), `id`
 *   (malformed; required for `generate`), a member the type does not have (`unknown`), `token`,
 *   `job_id`, `request` (not an object), or a routing member that is not a bounded string or
 *   contradicts the same member inside `request`.
 */
export function readClientMessage(msg: Readonly<Record<string, unknown>>): ClientMessage {
  const type = msg["type"];
  if (!isType(type)) {
    throw validationError(
      "type",
      "enum",
      `type must be one of ${Object.keys(MEMBERS).join(", ")}; got ${typeof type === "string" ? JSON.stringify(type.slice(0, 32)) : typeof type}`,
    );
  }
  const allowed = MEMBERS[type];
  for (const k of Object.keys(msg)) {
    if (k !== "type" && k !== "id" && !allowed.includes(k)) {
      throw validationError(
        k.slice(0, 64),
        "unknown",
        `${type} messages have no member ${JSON.stringify(k.slice(0, 64))}`,
      );
    }
  }
  const rawId = msg["id"];
  if (rawId !== undefined && clientIdOf(msg) === undefined) {
    throw validationError("id", "format", `id must be a string of 1-${CLIENT_ID_MAX_CHARS} characters`);
  }
  const id = clientIdOf(msg);
  const withId = id === undefined ? {} : { id };
  switch (type) {
    case "auth":
      return { type, token: boundedString(msg, "token", TOKEN_MAX_CHARS), ...withId };
    case "cancel":
    case "subscribe":
      return { type, jobId: boundedString(msg, "job_id", JOB_ID_MAX_CHARS), ...withId };
    case "ping":
      return { type, ...withId };
    case "generate":
      if (id === undefined) throw validationError("id", "required", "a generate message needs an id");
      return { type, id, body: generateBody(msg) };
  }
}

/** `request` with `modality`, `family`, `model`, `task` from beside it: the `POST /queue` body. */
function generateBody(msg: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const request = msg["request"];
  if (request === undefined || request === null) {
    throw validationError("request", "required", "request (the generation fields) is required");
  }
  if (typeof request !== "object" || Array.isArray(request)) {
    throw validationError("request", "type", "request must be an object of generation fields");
  }
  const body: Record<string, unknown> = { ...(request as Record<string, unknown>) };
  for (const field of ROUTING) {
    const v = msg[field];
    if (v === undefined || v === null) continue;
    if (typeof v !== "string" || v.length > ROUTE_PART_MAX_CHARS) {
      throw validationError(
        field,
        "format",
        `${field} must be a string of at most ${ROUTE_PART_MAX_CHARS} characters`,
      );
    }
    const inside = body[field];
    if (inside !== undefined && inside !== null && inside !== v) {
      throw validationError(
        `request.${field}`,
        "conflict",
        `request.${field} differs from the message's ${field}`,
      );
    }
    body[field] = v;
  }
  return body;
}
