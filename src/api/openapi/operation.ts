// One operation of the document from a short spec: who may call it, its inputs, its answers, and
// the problem codes it can answer with — grouped by status into problem+json responses whose
// `error` enum names exactly those codes.
import { STATUS_OF, TITLE_OF, type ErrorCode } from "../../core/errors.js";
import { ref, type JsonSchema } from "./json-schema.js";

/**
 * Who may call an operation (API.md §1):
 * - `token`: a bearer JWT or API key (the document's default);
 * - `public`: nobody needs one (`/health`, `/docs`…); `signed`: the URL's signature authorises it;
 * - `token-or-signed`: a signed URL or a token (objects);
 * - `websocket`: a token in the header or in the first message;
 * - `metrics`: open unless METRICS_TOKEN is set; `admin`: a token with the admin scope.
 */
export type Access = "token" | "public" | "signed" | "token-or-signed" | "websocket" | "metrics" | "admin";

const ANY_TOKEN = [{ bearer: [] }, { apiKey: [] }];

/** `security` per access rule; undefined inherits the document's (a token). */
const SECURITY: Readonly<Record<Access, readonly object[] | undefined>> = {
  token: undefined,
  public: [],
  signed: [],
  "token-or-signed": [{}, ...ANY_TOKEN],
  websocket: [{}, ...ANY_TOKEN],
  metrics: [{}, { metricsToken: [] }],
  // Scopes of http schemes are role names in OpenAPI 3.1.
  admin: [{ bearer: ["admin"] }, { apiKey: ["admin"] }, { adminCookie: [] }],
};

/** Access rules under which a missing or bad token is a 401. */
const CHECKS_TOKEN: ReadonlySet<Access> = new Set<Access>([
  "token",
  "token-or-signed",
  "websocket",
  "metrics",
  "admin",
]);

/** Problems of an authenticated read: the reads quota (429) and Redis (503). */
export const READ_PROBLEMS: readonly ErrorCode[] = ["rate_limited", "unavailable"];

/** Problems of reading a JSON body (api/body.ts): type, size, syntax, the process's budget. */
export const JSON_BODY_PROBLEMS: readonly ErrorCode[] = [
  "validation_error",
  "invalid_json",
  "empty_body",
  "request_too_large",
  "unsupported_media_type",
  "unavailable",
];

/** A `$ref` to the component header `name`. */
export const header = (name: string): JsonSchema => ({ $ref: `#/components/headers/${name}` });

/** The headers of every answer. */
const ID_HEADERS = { "X-Request-Id": header("XRequestId"), "X-Weyl-Request-Id": header("XWeylRequestId") };

/** A response object; every answer also carries the request id headers. */
export function response(
  description: string,
  content?: Readonly<Record<string, JsonSchema>>,
  headers: Readonly<Record<string, JsonSchema>> = {},
): JsonSchema {
  return {
    description,
    headers: { ...ID_HEADERS, ...headers },
    ...(content === undefined ? {} : { content }),
  };
}

/** A JSON answer whose body is the component schema `id`. */
export function jsonResponse(
  description: string,
  id: string,
  headers?: Readonly<Record<string, JsonSchema>>,
) {
  return response(description, { "application/json": { schema: ref(id) } }, headers);
}

/** Headers that come with a status whatever its code. */
function headersOf(status: number, codes: readonly ErrorCode[]): Record<string, JsonSchema> {
  const headers: Record<string, JsonSchema> = {};
  if (status === 429 || status === 503) headers["Retry-After"] = header("RetryAfter");
  if (codes.includes("rate_limited")) {
    headers["RateLimit-Policy"] = header("RateLimitPolicy");
    headers.RateLimit = header("RateLimit");
  }
  if (codes.includes("capacity_exhausted")) headers.Link = header("AlternateLink");
  if (codes.includes("method_not_allowed")) headers.Allow = header("Allow");
  return headers;
}

/**
 * The problem responses of `codes`, one per status: `application/problem+json` documents whose
 * `error` is one of that status's codes.
 */
export function problemResponses(codes: Iterable<ErrorCode>): Record<string, JsonSchema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = STATUS_OF[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, JsonSchema> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const schema = {
      allOf: [
        ref("Problem"),
        { type: "object", properties: { status: { const: status }, error: { enum: list } } },
      ],
    };
    out[String(status)] = response(
      list.map((c) => `\`${c}\`: ${TITLE_OF[c]}`).join(" · "),
      { "application/problem+json": { schema } },
      headersOf(status, list),
    );
  }
  return out;
}

/** What an operation is, in short. */
export interface OperationSpec {
  readonly operationId: string;
  readonly tags: readonly string[];
  readonly summary: string;
  readonly description?: string;
  readonly access: Access;
  readonly parameters?: readonly JsonSchema[];
  readonly requestBody?: JsonSchema;
  /** The answers that are not problem documents, by status. */
  readonly responses: Readonly<Record<string, JsonSchema>>;
  /** Problem codes the operation can answer with; `internal_error` (and `unauthorized` where a token is checked) are added. */
  readonly problems: readonly ErrorCode[];
}

/** The OpenAPI operation object of `spec`. */
export function operation(spec: OperationSpec): JsonSchema {
  const security = SECURITY[spec.access];
  const codes: ErrorCode[] = [...spec.problems, "internal_error"];
  if (CHECKS_TOKEN.has(spec.access)) codes.push("unauthorized");
  const problems = problemResponses(codes);
  const clash = Object.keys(problems).find((status) => Object.hasOwn(spec.responses, status));
  if (clash !== undefined)
    throw new Error(`${spec.operationId}: status ${clash} is both an answer and a problem`);
  return {
    operationId: spec.operationId,
    tags: spec.tags,
    summary: spec.summary,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    ...(security === undefined ? {} : { security }),
    ...(spec.parameters === undefined ? {} : { parameters: spec.parameters }),
    ...(spec.requestBody === undefined ? {} : { requestBody: spec.requestBody }),
    responses: { ...spec.responses, ...problems },
  };
}

/** A parameter object. */
export function parameter(
  name: string,
  where: "path" | "query" | "header",
  schema: JsonSchema,
  description?: string,
  required = where === "path",
): JsonSchema {
  return {
    name,
    in: where,
    ...(required ? { required: true } : {}),
    ...(description === undefined ? {} : { description }),
    schema,
  };
}

/** A `$ref` to the component parameter `name`. */
export const parameterRef = (name: string): JsonSchema => ({ $ref: `#/components/parameters/${name}` });
