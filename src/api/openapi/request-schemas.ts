// The request side of the document: the zod schemas the routes validate bodies with (the generation
// fields and queue options of core/request-schema), and, for what routes check by hand (the upload
// body, query values), zod schemas built here from the constants those checks use.
import { z } from "zod";
import { TASKS, TASKS_OF, type Task } from "../../core/catalog.js";
import { formatIds, defaultFormat, MODALITIES, type Modality } from "../../core/formats.js";
import { JOB_ID_RE } from "../../core/ids.js";
import {
  DEFAULTS,
  imageGenerationSchema,
  queueOptionsSchema,
  videoGenerationSchema,
} from "../../core/request-schema.js";
import { JOB_ID_MAX_CHARS, ROUTE_PART_MAX_CHARS } from "../../core/request-limits.js";
import { UPLOAD_CONTENT_TYPES, UPLOAD_MAX_BYTES } from "../../core/upload-url.js";
import { CUSTOMER_RE } from "../routes/usage.js";
import { USAGE_GROUPINGS } from "../usage.js";
import { FIELD_NOTES } from "./field-notes.js";
import {
  componentSchemas,
  createComponentRegistry,
  inlineSchema,
  ref,
  type JsonSchema,
} from "./json-schema.js";
import { parameter } from "./operation.js";

const tuple = <T extends string>(values: readonly T[]) => values as [T, ...T[]];

/** A path segment naming a family or a model (a Hugging Face id's halves fit). */
const routePart = () => z.string().min(1).max(ROUTE_PART_MAX_CHARS);

/** The members of a `POST /queue` body that name the model route, for one modality. */
function routing(modality: Modality) {
  return {
    modality: z.literal(modality),
    family: routePart(),
    model: routePart(),
    task: z.enum(tuple<Task>(TASKS_OF[modality])),
  };
}

/** The request schemas: component schemas and parameters. */
export interface RequestSchemas {
  readonly components: Record<string, JsonSchema>;
  /** Component parameters (the original spec's names: Family, Model, Task, JobId, formats, Backend). */
  readonly parameters: Record<string, JsonSchema>;
  /** The query parameters of `GET /usage`. */
  readonly usageParameters: readonly JsonSchema[];
}

/** The body of `POST /uploads` (checked by core/upload-url.ts parseUploadRequest). */
const createUploadRequest = z.strictObject({
  content_type: z.enum(UPLOAD_CONTENT_TYPES),
  bytes: z
    .int()
    .min(1)
    .max(UPLOAD_MAX_BYTES)
    .meta({ description: "The size of the upload in bytes (at most 50 MiB)." }),
});

/** The query of `GET /usage` (checked by routes/usage.ts). */
const usageQuery = z.object({
  from: z
    .string()
    .meta({ format: "date-time", description: "Window start (RFC 3339); the UTC month's start by default." })
    .optional(),
  to: z
    .string()
    .meta({ format: "date-time", description: "Window end (RFC 3339); now by default." })
    .optional(),
  group_by: z.enum(USAGE_GROUPINGS).optional(),
  customer: z
    .string()
    .regex(CUSTOMER_RE)
    .meta({ description: "Admins only: another customer's usage." })
    .optional(),
});

/** The notes, and the defaults the server applies, on the properties of a request body schema. */
function annotate(schema: JsonSchema, modality: Modality): void {
  const properties = schema.properties as Record<string, JsonSchema> | undefined;
  const defaults: Readonly<Record<string, unknown>> = DEFAULTS[modality];
  for (const [name, property] of Object.entries(properties ?? {})) {
    const note = FIELD_NOTES[name];
    if (note !== undefined) {
      const own = typeof property.description === "string" ? ` ${property.description}` : "";
      property.description = `${note}${own}`;
    }
    // `steps` has a per-model default (the catalogue's), not one value.
    if (name !== "steps" && Object.hasOwn(defaults, name) && property.default === undefined) {
      property.default = defaults[name];
    }
    if (name === "format") property.default = defaultFormat(modality);
  }
}

/**
 * The request schemas of the document. `minTtlS`/`maxTtlS`: the `ttl` bounds of this deployment
 * (MIN_TTL_S), as `POST /queue` checks them.
 */
export function requestSchemas(opts: { minTtlS: number; maxTtlS: number }): RequestSchemas {
  const queueOptions = queueOptionsSchema(opts.minTtlS, opts.maxTtlS);
  const registry = createComponentRegistry();
  const generation = { image: imageGenerationSchema, video: videoGenerationSchema } as const;
  // The names of the original spec's components, so a reader of both finds the same things.
  const names = {
    image: { request: "ImageGenerateRequest", job: "ImageJobRequest", format: "ImageFormatId" },
    video: { request: "VideoGenerateRequest", job: "VideoJobRequest", format: "VideoFormatId" },
  } as const;
  // Composed as the parser's entryQueueSchema is, with the routing members it checks beforehand.
  const jobs = MODALITIES.map((m) => generation[m].extend({ ...queueOptions.shape, ...routing(m) }));
  for (const [i, m] of MODALITIES.entries()) {
    registry.add(generation[m], { id: names[m].request });
    registry.add(jobs[i]!, { id: names[m].job });
  }
  registry.add(z.discriminatedUnion("modality", [jobs[0]!, jobs[1]!]), { id: "AsyncJobRequest" });
  registry.add(createUploadRequest, { id: "CreateUploadRequest" });
  const components = componentSchemas(registry, "input");
  for (const m of MODALITIES) {
    annotate(components[names[m].request]!, m);
    annotate(components[names[m].job]!, m);
  }
  components.AsyncJobRequest!.discriminator = {
    propertyName: "modality",
    mapping: Object.fromEntries(MODALITIES.map((m) => [m, ref(names[m].job).$ref])),
  };
  for (const m of MODALITIES) {
    components[names[m].format] = inlineSchema(
      z.enum(tuple(formatIds(m))).default(defaultFormat(m)),
      "input",
    );
  }
  components.TaskId = inlineSchema(z.enum(tuple<Task>(TASKS)), "input");
  components.IdempotencyKey = inlineSchema(queueOptions.shape.idempotency_key, "input");

  const parameters = {
    Family: parameter("family", "path", inlineSchema(routePart(), "input"), FIELD_NOTES.family),
    Model: parameter("model", "path", inlineSchema(routePart(), "input"), FIELD_NOTES.model),
    Task: parameter("task", "path", ref("TaskId"), FIELD_NOTES.task),
    JobId: parameter("id", "path", inlineSchema(z.string().max(JOB_ID_MAX_CHARS).regex(JOB_ID_RE), "input")),
    ImageFormat: parameter("format", "query", ref(names.image.format), FIELD_NOTES.format),
    VideoFormat: parameter("format", "query", ref(names.video.format), FIELD_NOTES.format),
    Backend: parameter(
      "backend",
      "query",
      inlineSchema(queueOptions.shape.backend, "input"),
      FIELD_NOTES.backend,
    ),
  };
  const usage = inlineSchema(usageQuery, "input");
  const usageProperties = usage.properties as Record<string, JsonSchema>;
  return {
    components,
    parameters,
    usageParameters: Object.entries(usageProperties).map(([name, schema]) => {
      const { description, ...rest } = schema;
      return parameter(name, "query", rest, typeof description === "string" ? description : undefined);
    }),
  };
}
