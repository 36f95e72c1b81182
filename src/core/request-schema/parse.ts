// The two parses of a generation request (API.md §3, §7): the sync route's body and `POST /queue`'s.
// Structural bounds first, then the route's fields, then the model's schema, then normalisation.
import { formatFamilyModel } from "../model-route.js";
import type { z } from "zod";
import { resolveRoute, type ModelEntry, type Task } from "../catalog.js";
import { AppError, validationError } from "../errors.js";
import { JSON_BODY_LIMITS, LORA_ITEM_MAX_MEMBERS, MAX_LORAS } from "../request-limits.js";
import {
  DEFAULT_WEBHOOK_EVENTS,
  QUEUE_BODY_FIELDS,
  type ROUTING_FIELDS,
  SERVER_OWNED_FIELDS,
  SYNC_BODY_FIELDS,
  WEBHOOK_EVENTS,
} from "./fields.js";
import { issueError, unknownFieldError } from "./messages.js";
import { normalise } from "./normalise.js";
import { entryQueueSchema, entrySchema, type ParsedGeneration, type ParsedQueueOptions } from "./schema.js";
import type { GenerationRequest, QueueContext, QueueRequest, SyncContext } from "./types.js";

type Body = Record<string, unknown>;

function asObject(body: unknown): Body {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw validationError("body", "type", "request body must be a JSON object");
  }
  // The member count is bounded before anything walks the members (a body that came through the
  // HTTP reader is bounded already; other callers may pass anything).
  let members = 0;
  for (const _ in body) {
    if (++members > JSON_BODY_LIMITS.maxMembers) {
      throw validationError(
        "body",
        "max_members",
        `request body has more than ${JSON_BODY_LIMITS.maxMembers} members`,
      );
    }
  }
  // `null` means "not given" (generated clients send it for unset optional members); fromEntries keeps
  // a `__proto__` key as an own property, so it is reported as an unknown field, not applied.
  const values = Object.values(body);
  if (!values.includes(null) && !Object.prototype.hasOwnProperty.call(body, "__proto__")) return body as Body;
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null));
}

/**
 * The arrays and maps below the top level, bounded before any per-item work (zod checks `max()`
 * only after validating every item).
 * @throws AppError 400 `validation_error` with `max_items` or `max_members`.
 */
function checkSizes(body: Body): void {
  const lora = body["lora"];
  if (Array.isArray(lora)) {
    if (lora.length > MAX_LORAS) {
      throw validationError("lora", "max_items", `lora must have at most ${MAX_LORAS} items`);
    }
    lora.forEach((item: unknown, i) => {
      if (item === null || typeof item !== "object") return;
      let members = 0;
      for (const _ in item) {
        if (++members > LORA_ITEM_MAX_MEMBERS) {
          throw validationError(`lora.${i}`, "max_members", "each lora entry must be an object {id, weight}");
        }
      }
    });
  }
  const events = body["webhook_events"];
  if (Array.isArray(events) && events.length > WEBHOOK_EVENTS.length) {
    throw validationError(
      "webhook_events",
      "max_items",
      `webhook_events must have at most ${WEBHOOK_EVENTS.length} items`,
    );
  }
}

function withoutNullLoraMembers(body: Body): Body {
  checkSizes(body);
  const lora = body["lora"];
  if (!Array.isArray(lora)) return body;
  const items: unknown[] = lora.map((item: unknown) =>
    item !== null && typeof item === "object" && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).filter(([, v]) => v !== null))
      : item,
  );
  return { ...body, lora: items };
}

function checkServerOwned(body: Body): void {
  for (const key of Object.keys(body)) {
    if (SERVER_OWNED_FIELDS.has(key)) {
      throw validationError(key, "server_owned", `${key} is set by the server and cannot be sent`);
    }
  }
}

function checkKnownFields(body: Body, allowed: ReadonlySet<string>, what: string): void {
  for (const key of Object.keys(body)) {
    if (!allowed.has(key)) throw unknownFieldError(key, allowed, what);
  }
}

function parseWith<T>(schema: z.ZodType, body: Body): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const first = result.error.issues[0];
    throw first === undefined
      ? validationError("body", "invalid", "invalid request")
      : issueError(first, body);
  }
  return result.data as T;
}

function assertRoutable(entry: ModelEntry, task: Task): void {
  if (!entry.tasks.includes(task)) {
    throw new AppError(
      "not_found",
      `model ${formatFamilyModel(entry.family, entry.model)} does not offer task ${task}`,
      {
        details: { field: "task" },
      },
    );
  }
}

/**
 * Validates the body of `POST /{modality}/{family}/{model}/{task}` (and a WebSocket `request`) for a
 * route already resolved by {@link resolveRoute}, and returns it normalised: canonical family/model,
 * format (`ctx.format` or the modality default) with its pixel size, defaults applied (`seed` stays
 * absent when not sent), image/mask classified.
 * @throws AppError 400 `validation_error` with `details.field` (dotted path) for the first problem:
 *   a body that is not an object (`body`), a server-owned field (`server_owned`), a field outside the
 *   modality's schema (`unknown`), a bad type or range, a missing image/mask (`required`), an unknown
 *   LoRA or one of another family (`lora`), a format the model lacks (`format`).
 */
export function parseSyncRequest(body: unknown, ctx: SyncContext): GenerationRequest {
  const obj = withoutNullLoraMembers(asObject(body));
  assertRoutable(ctx.entry, ctx.task);
  checkServerOwned(obj);
  checkKnownFields(obj, SYNC_BODY_FIELDS[ctx.entry.modality], `a ${ctx.entry.modality} request`);
  const parsed = parseWith<ParsedGeneration>(entrySchema(ctx.entry), obj);
  return normalise(parsed, ctx.entry, ctx.task, ctx.format, ctx.catalog);
}

function routingField(obj: Body, field: (typeof ROUTING_FIELDS)[number]): string {
  const v = obj[field];
  if (v === undefined) throw validationError(field, "required", `${field} is required`);
  if (typeof v !== "string") throw validationError(field, "type", `${field} must be a string`);
  return v;
}

/**
 * Validates a `POST /queue` body: routing (`modality family model task`, resolved with
 * {@link resolveRoute}, Hugging Face aliases accepted), generation fields as for the sync route,
 * `format` (one of the model's), `backend`, and the queue options (`priority` default normal,
 * `webhook` https, `webhook_events` default terminal events, `ttl` in [minTtlS, maxTtlS],
 * `idempotency_key` ≤ 64 chars).
 * @throws AppError 400 `validation_error` as {@link parseSyncRequest} (plus missing routing fields,
 *   a bad modality or task); 404 `not_found` for an unknown or unavailable model or a task it lacks.
 */
export function parseQueueRequest(body: unknown, ctx: QueueContext): QueueRequest {
  const obj = withoutNullLoraMembers(asObject(body));
  checkServerOwned(obj);
  const route = resolveRoute(ctx.catalog, {
    modality: routingField(obj, "modality"),
    family: routingField(obj, "family"),
    model: routingField(obj, "model"),
    task: routingField(obj, "task"),
  });
  const { entry, task } = route;
  checkKnownFields(obj, QUEUE_BODY_FIELDS[entry.modality], `a ${entry.modality} job`);
  const parsed = parseWith<ParsedGeneration & ParsedQueueOptions>(
    entryQueueSchema(entry, ctx.minTtlS, ctx.maxTtlS),
    obj,
  );
  if (parsed.webhook_events !== undefined && parsed.webhook === undefined) {
    throw validationError("webhook_events", "requires_webhook", "webhook_events needs a webhook");
  }
  const generation = normalise(parsed, entry, task, parsed.format, ctx.catalog);
  const events =
    parsed.webhook === undefined
      ? undefined
      : WEBHOOK_EVENTS.filter((e) => (parsed.webhook_events ?? DEFAULT_WEBHOOK_EVENTS).includes(e));
  // `generation` is this call's own fresh object: the queue options are added to it in place.
  const out: Record<string, unknown> = generation as unknown as Record<string, unknown>;
  out.priority = parsed.priority;
  if (parsed.backend !== undefined) out.backend = parsed.backend;
  if (parsed.ttl !== undefined) out.ttl = parsed.ttl;
  if (parsed.webhook !== undefined) out.webhook = parsed.webhook;
  if (events !== undefined) out.webhook_events = events;
  if (parsed.idempotency_key !== undefined) out.idempotency_key = parsed.idempotency_key;
  return out as unknown as QueueRequest;
}
