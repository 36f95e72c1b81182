// The response headers the operations name (components.headers), each described once.
import type { JsonSchema } from "./json-schema.js";

const text = (description: string, extra: JsonSchema = {}): JsonSchema => ({
  description,
  schema: { type: "string", ...extra },
});
const integer = (description: string): JsonSchema => ({
  description,
  schema: { type: "integer", minimum: 0 },
});

export const HEADERS: Readonly<Record<string, JsonSchema>> = Object.freeze({
  XRequestId: text("The request's id (`req_…`; a well-formed one the client sent is echoed).", {
    pattern: "^req_[A-Za-z0-9]+$",
  }),
  XWeylRequestId: text("The same as X-Request-Id, for clients of the original API."),
  RetryAfter: integer("Seconds to wait before retrying."),
  RateLimitPolicy: text('The quota counted (IETF RateLimit fields), e.g. `"submits";q=1200;w=60`.'),
  RateLimit: text('What is left of it and when the window ends, e.g. `"submits";r=1187;t=42`.'),
  AlternateLink: text('`</queue>; rel="alternate"`: the async queue takes the job instead.'),
  Allow: text("The methods the path has."),
  JobLocation: text("The job's URL (`<PUBLIC_URL>/jobs/{id}`).", { format: "uri" }),
  MonitorLink: text('The job\'s event stream: `<…/jobs/{id}/events>; rel="monitor"`.'),
  OutputLocation: text("The signed URL of the output or object.", { format: "uri" }),
  ContentLocation: text("The signed URL of the output.", { format: "uri" }),
  XJobId: text("The job's id."),
  XSeed: integer("The seed used (also X-Weyl-Seed)."),
  XDurationMs: integer("Milliseconds from admission to completion (also X-Weyl-Duration-Ms)."),
  XGpuMs: integer("GPU milliseconds the job used."),
  IdempotentReplayed: text("`true` when the answer is a replay of an earlier request with the same key.", {
    enum: ["true"],
  }),
  ETag: text("The entity tag (an object's is its digest)."),
  ImmutableCacheControl: text("`private, max-age=31536000, immutable`."),
  AcceptRanges: text("`bytes`."),
  ContentRange: text("The range sent, e.g. `bytes 0-1023/834211`."),
  PublicCacheControl: text("How long caches may keep it."),
  SetCookie: text("The admin session cookie (HttpOnly, SameSite=Strict, Path=/admin)."),
});
