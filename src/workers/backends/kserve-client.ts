// KServe v2 / Open Inference Protocol client over undici (API.md §4): infer, generate_stream, health.
import { StringDecoder } from "node:string_decoder";
import { Pool } from "undici";

/** A tensor of the v2 protocol (only BYTES and scalar parameters are used by generation models). */
export interface InferTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
  readonly data: readonly unknown[];
  readonly parameters?: Readonly<Record<string, unknown>>;
}

export interface InferRequest {
  readonly id: string;
  readonly parameters: Readonly<Record<string, string | number | boolean>>;
  readonly inputs: readonly InferTensor[];
}

export interface InferResult {
  /** Media bytes of each output, in order. */
  readonly outputs: readonly Uint8Array[];
  readonly contentType: string;
  readonly gpuMs?: number;
  readonly seed?: number;
}

export interface ProgressUpdate {
  readonly step: number;
  readonly steps: number;
  readonly progress: number;
  /** A preview frame as a `data:image/...;base64,` URI. */
  readonly preview?: string;
}

/**
 * The backend answered with an HTTP error status. Its message (the status and the start of the
 * backend's answer) is a detail for the logs and the admins' attempt log, never shown to customers.
 */
export class BackendHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "BackendHttpError";
  }
}

/** The backend's answer could not be understood (a broken backend, treated as a failure). */
export class BackendProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackendProtocolError";
  }
}

export interface KserveClient {
  infer(model: string, req: InferRequest, opts: { signal: AbortSignal }): Promise<InferResult>;
  /** Triton's generate extension: progress (and previews) as SSE, then the final answer. */
  generateStream(
    model: string,
    req: InferRequest,
    opts: { signal: AbortSignal; onProgress: (p: ProgressUpdate) => void },
  ): Promise<InferResult>;
  ready(opts: { signal: AbortSignal }): Promise<boolean>;
  modelReady(model: string, opts: { signal: AbortSignal }): Promise<boolean>;
  close(): Promise<void>;
}

interface V2Answer {
  outputs?: { name?: string; data?: unknown[]; parameters?: { content_type?: string } }[];
  parameters?: {
    gpu_ms?: number;
    seed?: number;
    content_type?: string;
    final?: boolean;
    step?: number;
    steps?: number;
    progress?: number;
  };
  error?: string;
  status?: number;
}

function decodeAnswer(answer: V2Answer): InferResult {
  const out = answer.outputs?.find((o) => o.name === "output") ?? answer.outputs?.[0];
  if (!out || !Array.isArray(out.data) || out.data.length === 0) {
    throw new BackendProtocolError("backend answer has no output tensor");
  }
  const outputs = out.data.map((d) => {
    if (typeof d !== "string") throw new BackendProtocolError("output data is not a base64 string");
    return new Uint8Array(Buffer.from(d, "base64"));
  });
  const contentType = answer.parameters?.content_type ?? out.parameters?.content_type;
  if (!contentType) throw new BackendProtocolError("backend answer has no content_type");
  return {
    outputs,
    contentType,
    ...(typeof answer.parameters?.gpu_ms === "number" ? { gpuMs: answer.parameters.gpu_ms } : {}),
    ...(typeof answer.parameters?.seed === "number" ? { seed: answer.parameters.seed } : {}),
  };
}

function previewOf(answer: V2Answer): string | undefined {
  const p = answer.outputs?.find((o) => o.name === "preview");
  const d = p?.data?.[0];
  return typeof d === "string" && d.startsWith("data:image/") ? d : undefined;
}

async function errorFrom(status: number, body: { text(): Promise<string> }) {
  let detail = "";
  try {
    detail = (await body.text()).slice(0, 300);
  } catch {
    // body already gone
  }
  return new BackendHttpError(status, `backend answered ${status}${detail ? `: ${detail}` : ""}`);
}

/**
 * A client for one backend. `connections` bounds the sockets to it (its capacity plus headroom).
 * Aborting the signal closes the request's connection, so the backend sees the client go away.
 */
export function createKserveClient(baseUrl: string, opts: { connections: number }): KserveClient {
  const url = new URL(baseUrl);
  const basePath = url.pathname.replace(/\/$/, "");
  const pool = new Pool(url.origin, {
    connections: opts.connections,
    pipelining: 1,
    keepAliveTimeout: 10_000,
  });

  async function post(path: string, req: InferRequest, signal: AbortSignal, accept: string) {
    const res = await pool.request({
      path: `${basePath}${path}`,
      method: "POST",
      headers: { "content-type": "application/json", accept, "x-request-id": req.id },
      body: JSON.stringify(req),
      signal,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    if (res.statusCode >= 300) throw await errorFrom(res.statusCode, res.body);
    return res;
  }

  async function get(path: string, signal: AbortSignal): Promise<boolean> {
    const res = await pool.request({ path: `${basePath}${path}`, method: "GET", signal });
    await res.body.dump();
    return res.statusCode === 200;
  }

  return {
    async infer(model, req, { signal }) {
      const res = await post(
        `/v2/models/${encodeURIComponent(model)}/infer`,
        req,
        signal,
        "application/json",
      );
      let answer: V2Answer;
      try {
        answer = (await res.body.json()) as V2Answer;
      } catch (err) {
        if (signal.aborted) throw err;
        throw new BackendProtocolError("backend answer is not JSON");
      }
      return decodeAnswer(answer);
    },

    async generateStream(model, req, { signal, onProgress }) {
      const res = await post(
        `/v2/models/${encodeURIComponent(model)}/generate_stream`,
        req,
        signal,
        "text/event-stream",
      );
      // Frames are split on blank lines; the search resumes where the last one stopped (a large
      // final frame arrives in many chunks), and the decoder keeps characters split across chunks.
      // (StringDecoder: node's native UTF-8 decoding, 4x faster than TextDecoder's on a large frame)
      const decoder = new StringDecoder("utf8");
      let first = true;
      let buffer = "";
      let searchFrom = 0;
      let final: InferResult | undefined;
      for await (const chunk of res.body) {
        if (final) continue; // drain the rest so the connection can be reused
        buffer += decoder.write(chunk as Buffer);
        // a byte order mark opening the stream is not part of its first line (TextDecoder's default)
        if (first && buffer.length > 0) {
          first = false;
          if (buffer.startsWith("\uFEFF")) buffer = buffer.slice(1);
        }
        let sep: number;
        while (!final && (sep = buffer.indexOf("\n\n", searchFrom)) >= 0) {
          const frame = buffer.slice(0, sep);
          buffer = buffer.slice(sep + 2);
          searchFrom = 0;
          const data = frame
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart())
            .join("\n");
          if (!data) continue;
          let answer: V2Answer;
          try {
            answer = JSON.parse(data) as V2Answer;
          } catch {
            throw new BackendProtocolError("stream event is not JSON");
          }
          if (answer.error !== undefined) {
            throw new BackendHttpError(answer.status ?? 500, `backend stream failed: ${answer.error}`);
          }
          if (answer.parameters?.final) {
            final = decodeAnswer(answer);
            break;
          }
          const p = answer.parameters;
          if (p && typeof p.step === "number" && typeof p.steps === "number") {
            const preview = previewOf(answer);
            onProgress({
              step: p.step,
              steps: p.steps,
              progress: typeof p.progress === "number" ? p.progress : p.step / p.steps,
              ...(preview ? { preview } : {}),
            });
          }
        }
        if (!final) searchFrom = Math.max(0, buffer.length - 1);
      }
      if (final) return final;
      throw new BackendProtocolError("stream ended without a final answer");
    },

    ready: ({ signal }) => get("/v2/health/ready", signal),
    modelReady: (model, { signal }) => get(`/v2/models/${encodeURIComponent(model)}/ready`, signal),

    async close() {
      await pool.close().catch(() => pool.destroy());
    },
  };
}
