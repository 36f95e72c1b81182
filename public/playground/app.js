// render-gateway playground: the public HTTP API from a browser, with no framework and no build step.
// Calls: GET /models, POST /queue, GET /jobs/{id}/events (SSE read through fetch, since EventSource
// cannot send an Authorization header), GET /jobs/{id}, DELETE /jobs/{id}. API text is only ever set
// with textContent or as attribute values, never parsed as HTML. The token is never put in a URL.

const TOKEN_KEY = "render-gateway.token";
const RECENT_KEY = "render-gateway.recent";
const RECENT_MAX = 20;
const JOB_ID_RE = /^j_[A-Za-z0-9]{20,64}$/;
const INLINE_IMAGE_MAX = 1024 * 1024; // API.md §3: data: images up to 1 MiB
const SSE_BUFFER_MAX = 4 * 1024 * 1024; // a line longer than this ends the stream
const STREAM_RETRIES = 5;
const TERMINAL = new Set(["complete", "error", "cancelled"]);

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const el = {
  token: $("token"),
  remember: $("remember"),
  loadModels: $("load-models"),
  form: $("generate"),
  model: $("model"),
  task: $("task"),
  format: $("format"),
  prompt: $("prompt"),
  imageField: $("image-field"),
  image: $("image"),
  maskField: $("mask-field"),
  mask: $("mask"),
  negative: $("negative"),
  steps: $("steps"),
  seed: $("seed"),
  durationField: $("duration-field"),
  duration: $("duration"),
  priority: $("priority"),
  submit: $("submit"),
  status: $("status"),
  problem: $("problem"),
  jobId: $("job-id"),
  jobModel: $("job-model"),
  jobState: $("job-state"),
  jobPosition: $("job-position"),
  jobEta: $("job-eta"),
  progress: $("progress"),
  progressText: $("progress-text"),
  previewBox: $("preview-box"),
  preview: $("preview"),
  result: $("result"),
  cancel: $("cancel"),
  refresh: $("refresh"),
  forget: $("forget"),
  recent: $("recent"),
  recentEmpty: $("recent-empty"),
};

/** The catalogue entries by `modality/family/model`, from GET /models. */
let models = new Map();
/** The job on show: { id, modality, label, controller }. */
let current;

// ---- storage (may be unavailable: private modes throw) -------------------------------------------

function storageGet(store, key) {
  try {
    return store.getItem(key);
  } catch {
    return null;
  }
}
function storageSet(store, key, value) {
  try {
    if (value === null) store.removeItem(key);
    else store.setItem(key, value);
  } catch {
    // not kept; the page still works
  }
}

function saveToken() {
  const token = el.token.value.trim();
  const remember = el.remember.checked;
  storageSet(localStorage, TOKEN_KEY, remember && token ? token : null);
  storageSet(sessionStorage, TOKEN_KEY, !remember && token ? token : null);
}

// ---- HTTP ------------------------------------------------------------------------------------------

/** A failure to show: `message` is readable; `status` and `code` come from the answer, when any. */
class ApiProblem extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The readable message of a failed answer: the problem document's title and detail, its code. */
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

/** fetch of an API path relative to the page (so a gateway under a path prefix works too). */
async function call(path, init = {}) {
  const headers = new Headers(init.headers);
  const token = el.token.value.trim();
  if (token) headers.set("authorization", `Bearer ${token}`);
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

// ---- status and errors -----------------------------------------------------------------------------

function say(text) {
  el.status.textContent = text;
}
function showProblem(err) {
  if (err?.name === "AbortError") return;
  el.problem.textContent = err instanceof ApiProblem ? err.message : `Something went wrong: ${String(err)}`;
  el.problem.hidden = false;
}
function clearProblem() {
  el.problem.hidden = true;
  el.problem.textContent = "";
}

// ---- models ----------------------------------------------------------------------------------------

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

async function loadModels() {
  saveToken();
  clearProblem();
  if (!el.token.value.trim()) {
    say("Paste a token to load the models.");
    return;
  }
  say("Loading models…");
  try {
    const body = await (await call("models")).json();
    models = new Map();
    el.model.replaceChildren();
    for (const modality of ["image", "video"]) {
      const group = document.createElement("optgroup");
      group.label = modality === "image" ? "Image" : "Video";
      for (const m of Array.isArray(body?.[modality]) ? body[modality] : []) {
        if (m.status !== "active" && m.status !== "preview") continue;
        const key = `${modality}/${m.family}/${m.model}`;
        models.set(key, { ...m, modality });
        group.append(option(key, `${m.family}/${m.model}${m.status === "preview" ? " (preview)" : ""}`));
      }
      if (group.children.length > 0) el.model.append(group);
    }
    el.model.disabled = models.size === 0;
    el.submit.disabled = models.size === 0;
    modelChanged();
    say(models.size > 0 ? `${models.size} models loaded.` : "No model is available to this token.");
    await refreshRecent();
  } catch (err) {
    say("Could not load the models.");
    showProblem(err);
  }
}

function modelChanged() {
  const m = models.get(el.model.value);
  el.task.replaceChildren(...(m?.tasks ?? []).map((t) => option(t, t)));
  el.format.replaceChildren(...(m?.formats ?? []).map((f) => option(f, f)));
  el.task.disabled = !m;
  el.format.disabled = !m;
  const video = m?.modality === "video";
  el.durationField.hidden = !video;
  el.steps.max = video ? "50" : "150";
  taskChanged();
}

function taskChanged() {
  const task = el.task.value;
  el.imageField.hidden = !["i2i", "i2v", "edit"].includes(task);
  el.maskField.hidden = task !== "edit";
}

// ---- submit ----------------------------------------------------------------------------------------

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    if (file.size > INLINE_IMAGE_MAX) {
      reject(new ApiProblem(`${file.name} is larger than 1 MiB; pick a smaller image.`));
      return;
    }
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(new ApiProblem(`${file.name} could not be read.`));
    reader.readAsDataURL(file);
  });
}

async function requestBody() {
  const m = models.get(el.model.value);
  if (!m) throw new ApiProblem("Pick a model first.");
  const body = {
    modality: m.modality,
    family: m.family,
    model: m.model,
    task: el.task.value,
    format: el.format.value,
    prompt: el.prompt.value,
    priority: el.priority.value,
  };
  if (el.negative.value.trim()) body.negative_prompt = el.negative.value;
  if (el.steps.value !== "") body.steps = Number(el.steps.value);
  if (el.seed.value !== "") body.seed = Number(el.seed.value);
  if (m.modality === "video" && el.duration.value !== "") body.duration = Number(el.duration.value);
  if (!el.imageField.hidden) {
    const file = el.image.files?.[0];
    if (!file) throw new ApiProblem(`The ${body.task} task needs an input image.`);
    body.image = await readDataUrl(file);
  }
  if (!el.maskField.hidden) {
    const file = el.mask.files?.[0];
    if (!file) throw new ApiProblem("The edit task needs a mask.");
    body.mask = await readDataUrl(file);
  }
  return body;
}

async function submit(event) {
  event.preventDefault();
  clearProblem();
  saveToken();
  el.submit.disabled = true;
  try {
    const body = await requestBody();
    say("Submitting…");
    const res = await call("queue", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const job = await res.json();
    const entry = {
      id: job.id,
      modality: body.modality,
      label: `${body.family}/${body.model} · ${body.task} · ${body.format}`,
      created_at: job.created_at,
      status: job.status,
    };
    remember(entry);
    follow(entry, job);
  } catch (err) {
    say("The job was not submitted.");
    showProblem(err);
  } finally {
    el.submit.disabled = models.size === 0;
  }
}

// ---- following a job -------------------------------------------------------------------------------

function resetJobView(entry) {
  clearProblem();
  el.jobId.textContent = entry.id;
  el.jobModel.textContent = entry.label ?? "—";
  el.jobState.textContent = "—";
  el.jobPosition.textContent = "—";
  el.jobEta.textContent = "—";
  el.progress.value = 0;
  el.progressText.textContent = "—";
  el.previewBox.hidden = true;
  el.preview.removeAttribute("src");
  el.result.replaceChildren();
  el.cancel.hidden = true;
}

function seconds(s) {
  if (typeof s !== "number" || !Number.isFinite(s)) return "—";
  return s < 90 ? `about ${Math.max(0, Math.round(s))} s` : `about ${Math.round(s / 60)} min`;
}

function setState(status) {
  el.jobState.textContent = status;
  el.cancel.hidden = TERMINAL.has(status);
  if (status !== "queued") {
    el.jobPosition.textContent = "—";
    if (TERMINAL.has(status)) el.jobEta.textContent = "—";
  }
  updateRecent(current.id, status);
}

function showPosition(data) {
  const pos = data.position;
  let text = pos === 0 ? "next to start" : `${pos} ${pos === 1 ? "job" : "jobs"} ahead`;
  if (data.held === "concurrency_limit") text += " (held: waits for one of your running jobs to end)";
  el.jobPosition.textContent = text;
  el.jobEta.textContent = seconds(data.eta_seconds);
  say(`Queued: ${text}, wait ${seconds(data.eta_seconds)}.`);
}

/** Only http(s) URLs are shown or linked (never `javascript:` or the like). */
function safeUrl(raw) {
  try {
    const u = new URL(String(raw), document.baseURI);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : undefined;
  } catch {
    return undefined;
  }
}

function showOutputs(urls, modality) {
  el.result.replaceChildren();
  urls.forEach((raw, i) => {
    const url = safeUrl(raw);
    if (!url) return;
    const n = urls.length > 1 ? ` ${i + 1}` : "";
    let media;
    if (modality === "video") {
      media = document.createElement("video");
      media.controls = true;
      media.playsInline = true;
      media.preload = "metadata";
      media.setAttribute("aria-label", `Generated video${n}`);
    } else {
      media = document.createElement("img");
      media.alt = `Generated image${n}`;
    }
    media.src = url;
    const link = document.createElement("a");
    link.href = url;
    link.rel = "noreferrer";
    link.target = "_blank";
    link.textContent = `Open the ${modality === "video" ? "video" : "image"}${n} in a new tab`;
    el.result.append(media, link);
  });
}

function onEvent(name, data) {
  switch (name) {
    case "position":
      setState("queued");
      showPosition(data);
      break;
    case "started":
      setState("running");
      say(data.attempt > 1 ? `Running again (attempt ${data.attempt}).` : "Running.");
      break;
    case "progress": {
      const p = Math.min(1, Math.max(0, Number(data.progress) || 0));
      el.progress.value = p;
      const steps = data.steps ? `, step ${data.step} of ${data.steps}` : "";
      el.progressText.textContent = `${Math.round(p * 100)}%${steps}`;
      if (el.jobState.textContent !== "running") setState("running");
      break;
    }
    case "preview":
      if (typeof data.frame === "string" && data.frame.startsWith("data:image/")) {
        el.preview.src = data.frame;
        el.previewBox.hidden = false;
      }
      break;
    case "complete": {
      el.progress.value = 1;
      el.progressText.textContent = "100%";
      el.previewBox.hidden = true;
      setState("complete");
      const urls = Array.isArray(data.outputs) && data.outputs.length > 0 ? data.outputs : [data.output];
      showOutputs(
        urls.filter((u) => typeof u === "string"),
        current.modality,
      );
      say(`Complete${data.gpu_ms ? ` (${(data.gpu_ms / 1000).toFixed(1)} GPU seconds)` : ""}.`);
      break;
    }
    case "error": {
      const cancelled = data.code === "cancelled" || data.code === "ttl_expired";
      setState(cancelled ? "cancelled" : "error");
      say(cancelled ? `Cancelled (${data.message ?? data.code}).` : "The job failed.");
      if (!cancelled)
        showProblem(new ApiProblem(`${data.message ?? "failed"} (code: ${data.code ?? "error"})`));
      break;
    }
  }
}

/**
 * Reads an SSE body (text/event-stream), calling `dispatch(name, data, id)` per event; returns when
 * the stream ends. Fields per the HTML standard: event, data (lines joined), id; comments ignored.
 */
async function readEvents(body, dispatch) {
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
      if (buffer.length > SSE_BUFFER_MAX) throw new ApiProblem("The event stream sent an oversized line.");
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/** Shows a job and follows its events until it ends, resuming after a dropped stream. */
function follow(entry, accepted) {
  current?.controller.abort();
  const controller = new AbortController();
  current = { id: entry.id, modality: entry.modality, controller };
  resetJobView(entry);
  setState(accepted?.status ?? entry.status ?? "queued");
  if (accepted?.position !== undefined) showPosition(accepted);
  else say(`Following job ${entry.id}.`);
  void stream(entry.id, controller.signal);
}

async function stream(id, signal) {
  let lastId;
  let ended = false;
  for (let failures = 0; !ended && !signal.aborted;) {
    try {
      const headers = { accept: "text/event-stream" };
      if (lastId !== undefined) headers["last-event-id"] = lastId;
      const res = await call(`jobs/${encodeURIComponent(id)}/events`, { headers, signal });
      await readEvents(res.body, (name, raw, eventId) => {
        if (signal.aborted) return;
        let data = {};
        try {
          data = JSON.parse(raw);
        } catch {
          return;
        }
        // An error without an id is the stream failing, not the job: reconnect after the last id.
        if (name === "error" && eventId === undefined && data.retriable === true) return;
        if (eventId !== undefined) lastId = eventId;
        failures = 0;
        onEvent(name, data);
        if (name === "complete" || name === "error") ended = true;
      });
    } catch (err) {
      if (signal.aborted) return;
      // Worth another try: no answer, 429, 5xx. Anything else (401, 404) will not change.
      const transient =
        !(err instanceof ApiProblem) || err.status === undefined || err.status === 429 || err.status >= 500;
      if (!transient) {
        say("Could not follow the job.");
        showProblem(err);
        return;
      }
    }
    if (ended || signal.aborted) return;
    if (++failures > STREAM_RETRIES) {
      say("Lost the event stream. Use Show in the recent jobs to follow the job again.");
      return;
    }
    await new Promise((r) => setTimeout(r, 500 * 2 ** failures));
  }
}

async function cancel(id) {
  clearProblem();
  try {
    const res = await call(`jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
    // 204: it was queued and is cancelled now. 202: it was running; it is cancelled too, and the
    // worker aborts the backend call (a followed job's stream then ends with the cancellation).
    const job = res.status === 202 ? await res.json().catch(() => undefined) : undefined;
    const status = typeof job?.status === "string" ? job.status : "cancelled";
    updateRecent(id, status);
    if (current?.id === id && res.status === 204) {
      current.controller.abort();
      setState(status);
    }
    say(`Cancelled job ${id}.`);
  } catch (err) {
    say(`Job ${id} was not cancelled.`);
    showProblem(err);
  }
}

// ---- recent jobs (ids in localStorage; no API lists a customer's jobs) ---------------------------

function loadRecent() {
  try {
    const list = JSON.parse(storageGet(localStorage, RECENT_KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((e) => typeof e?.id === "string" && JOB_ID_RE.test(e.id)) : [];
  } catch {
    return [];
  }
}
function saveRecent(list) {
  storageSet(localStorage, RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX)));
  renderRecent();
}
function remember(entry) {
  saveRecent([entry, ...loadRecent().filter((e) => e.id !== entry.id)]);
}
function updateRecent(id, status) {
  const list = loadRecent();
  const entry = list.find((e) => e.id === id);
  if (!entry || entry.status === status) return;
  entry.status = status;
  saveRecent(list);
}

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function renderRecent() {
  const list = loadRecent();
  el.recentEmpty.hidden = list.length > 0;
  el.recent.replaceChildren(
    ...list.map((entry) => {
      const li = document.createElement("li");
      li.dataset.jobId = entry.id;
      const what = document.createElement("span");
      what.className = "what";
      what.textContent = `${entry.label ?? entry.modality ?? "job"}`;
      const id = document.createElement("span");
      id.className = "id";
      const when = Date.parse(entry.created_at);
      id.textContent = `${entry.id}${Number.isNaN(when) ? "" : ` · ${new Date(when).toLocaleString()}`}`;
      what.append(id);
      const state = document.createElement("span");
      const status = typeof entry.status === "string" ? entry.status : "unknown";
      state.className = `state state-${status.replace(/[^a-z_]/g, "")}`;
      state.textContent = status;
      const actions = document.createElement("span");
      actions.className = "actions";
      actions.append(button("Show", `Show job ${entry.id}`, () => follow(entry)));
      if (!TERMINAL.has(status) && status !== "not found") {
        actions.append(button("Cancel", `Cancel job ${entry.id}`, () => void cancel(entry.id)));
      }
      li.append(what, state, actions);
      return li;
    }),
  );
}

/** Reads every listed job's state again, one request at a time (reads are rate limited). */
async function refreshRecent() {
  if (!el.token.value.trim()) return;
  for (const entry of loadRecent()) {
    try {
      const res = await call(`jobs/${encodeURIComponent(entry.id)}?redirect=false`, {
        headers: { accept: "application/json" },
      });
      const job = await res.json();
      if (typeof job?.status === "string") updateRecent(entry.id, job.status);
    } catch (err) {
      // 404: expired, or submitted with another token
      if (err instanceof ApiProblem && err.status === 404) updateRecent(entry.id, "not found");
      else {
        showProblem(err);
        return;
      }
    }
  }
}

// ---- start -----------------------------------------------------------------------------------------

function start() {
  const remembered = storageGet(localStorage, TOKEN_KEY);
  el.remember.checked = remembered !== null;
  el.token.value = remembered ?? storageGet(sessionStorage, TOKEN_KEY) ?? "";
  el.loadModels.addEventListener("click", () => void loadModels());
  el.token.addEventListener("keydown", (e) => {
    if (e.key === "Enter") void loadModels();
  });
  el.remember.addEventListener("change", saveToken);
  el.model.addEventListener("change", modelChanged);
  el.task.addEventListener("change", taskChanged);
  el.form.addEventListener("submit", (e) => void submit(e));
  el.cancel.addEventListener("click", () => current && void cancel(current.id));
  el.refresh.addEventListener("click", () => void refreshRecent());
  el.forget.addEventListener("click", () => saveRecent([]));
  renderRecent();
  if (el.token.value) void loadModels();
  else say("Paste a token and load the models to start.");
}

start();
