// The playground's HTTP side: calls to the gateway's public API with the pasted token (only ever in
// the Authorization header), problem documents as readable messages, and a job's Server-Sent Events
// read through fetch (EventSource cannot send an Authorization header), resumed after a drop.

/** Longest SSE line kept while waiting for its end; a longer one ends the stream. */
const SSE_LINE_MAX = 4 * 1024 * 1024;
/** Reconnections in a row without an event before following a job is given up. */
const STREAM_RETRIES = 5;

/** The states a job never leaves (API.md §3). */
export const TERMINAL = new Set(["complete", "error", "cancelled"]);

/** A failure to show: `message` is readable; `status` and `code` come from the answer, when any. */
export class ApiProblem extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = "ApiProblem";
    this.status = status;
    this.code = code;
  }
}

/** The readable message of a failed answer: the problem document's title, detail, field and code. */
async function problemOf(res) {
  let doc;
  try {
    doc = await res.json();
  } catch {
    doc = undefined;
  }
  const title = typeof doc?.title === "string" ? doc.title : `HTTP ${res.status}`;
  const detail = typeof doc?.detail === "string" ? doc.detail : res.statusText;
  const code = typeof doc?.error === "string" ? doc.error : undefined;
  const field = typeof doc?.details?.field === "string" ? doc.details.field : undefined;
  const parts = [detail ? `${title}: ${detail}` : title];
  if (field) parts.push(`(field: ${field})`);
  if (code) parts.push(`(code: ${code})`);
  const retry = res.headers.get("retry-after");
  if (retry) parts.push(`Try again in ${retry} s.`);
  return new ApiProblem(parts.join(" "), res.status, code);
}

/**
 * A client of the API. Paths are relative to the page, so a gateway served under a path prefix works
 * too. `token()` is read per call. A call throws ApiProblem for a non-2xx answer or no answer, and
 * the AbortError of an aborted call as it is.
 */
export function createApi(token) {
  async function call(path, init = {}) {
    const headers = new Headers(init.headers);
    const t = token();
    if (t) headers.set("authorization", `Bearer ${t}`);
    let res;
    try {
      res = await fetch(new URL(path, document.baseURI), { ...init, headers, cache: "no-store" });
    } catch (err) {
      if (err?.name === "AbortError") throw err;
      throw new ApiProblem("The gateway could not be reached. Check the connection and try again.");
    }
    if (!res.ok) throw await problemOf(res);
    return res;
  }
  const job = (id) => `jobs/${encodeURIComponent(id)}`;
  return {
    call,
    models: async () => (await call("models")).json(),
    submit: async (body) =>
      (
        await call("queue", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        })
      ).json(),
    /** The job as JSON (never the 303 of a complete job). */
    job: async (id) =>
      (await call(`${job(id)}?redirect=false`, { headers: { accept: "application/json" } })).json(),
    /** 204 (was queued) or 202 with the job (was running, now cancelled). */
    cancel: async (id) => {
      const res = await call(job(id), { method: "DELETE" });
      return res.status === 202 ? res.json().catch(() => ({ status: "cancelled" })) : { status: "cancelled" };
    },
    events: (id, lastEventId, signal) => {
      const headers = { accept: "text/event-stream" };
      if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
      return call(`${job(id)}/events`, { headers, signal });
    },
  };
}

/**
 * Reads an SSE body (text/event-stream), calling `dispatch(name, data, id)` per event, until the
 * stream ends. Fields as the HTML standard reads them: event, data (lines joined), id; comments
 * (the heartbeats) are skipped.
 */
export async function readEvents(body, dispatch) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let name = "";
  let data = [];
  let id;
  const line = (text) => {
    if (text === "") {
      if (data.length > 0) dispatch(name || "message", data.join("\n"), id);
      name = "";
      data = [];
      id = undefined;
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        line(buffer.slice(0, nl).replace(/\r$/, ""));
        buffer = buffer.slice(nl + 1);
      }
      if (buffer.length > SSE_LINE_MAX) throw new ApiProblem("The event stream sent an oversized line.");
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/** Worth another try: no answer, 429 or 5xx. A 401 or 404 will not change by asking again. */
function isTransient(err) {
  return !(err instanceof ApiProblem) || err.status === undefined || err.status === 429 || err.status >= 500;
}

/**
 * Follows a job's events until its `complete` or `error` event, calling `onEvent(name, data)`;
 * reconnects after a dropped stream with the last event id (no loss, no repeats). Resolves
 * "ended", "aborted" or "lost" (the stream kept failing); throws the ApiProblem of an answer that
 * will not change (401, 404).
 */
export async function followJob(api, id, { signal, onEvent }) {
  let lastId;
  let ended = false;
  for (let failures = 0; ;) {
    try {
      const res = await api.events(id, lastId, signal);
      await readEvents(res.body, (name, raw, eventId) => {
        if (signal.aborted || ended) return;
        let data;
        try {
          data = JSON.parse(raw);
        } catch {
          return;
        }
        // An error without an id is the stream failing, not the job: reconnect after the last id.
        if (name === "error" && eventId === undefined && data?.retriable === true) return;
        if (eventId !== undefined) lastId = eventId;
        failures = 0;
        if (name === "complete" || name === "error") ended = true;
        onEvent(name, data ?? {});
      });
    } catch (err) {
      if (signal.aborted) return "aborted";
      if (!isTransient(err)) throw err;
    }
    if (ended) return "ended";
    if (signal.aborted) return "aborted";
    if (++failures > STREAM_RETRIES) return "lost";
    await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (failures - 1)));
  }
}
