// render-gateway playground: pick a model, task and format from GET /models, submit with POST /queue,
// follow the job's events (position, progress, previews), see the image or play the video, list and
// cancel recent jobs. Plain DOM, no framework, no build step. Text from the API is only ever set as
// textContent or attribute values, never parsed as HTML; the token never goes into a URL.
import { ApiProblem, createApi, followJob, TERMINAL } from "./api.js";
import { createRecentList } from "./recent.js";
import { loadRecent, loadToken, rememberJob, saveRecent, saveToken } from "./store.js";

/** API.md §3: an inline `data:` image is at most 1 MiB. */
const INLINE_IMAGE_MAX = 1024 * 1024;
const NEEDS_IMAGE = new Set(["i2i", "i2v", "edit"]);

/** The page's elements by camel-cased id (`job-state` → `el.jobState`). */
const el = {};
for (const node of document.querySelectorAll("[id]")) {
  el[node.id.replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = node;
}

const api = createApi(() => el.token.value.trim());
const recent = createRecentList({
  list: el.recent,
  empty: el.recentEmpty,
  onShow: (entry) => void showListed(entry),
  onCancel: (id) => void cancel(id),
});
/** The catalogue entries by `modality/family/model`, from GET /models. */
let models = new Map();
/** The job on show: `{ id, modality, controller }` (the controller ends its event stream). */
let current;

// ---- status and problems ---------------------------------------------------------------------------

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

function keepToken() {
  saveToken(el.token.value.trim(), el.remember.checked);
}

// ---- models ----------------------------------------------------------------------------------------

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

async function loadModels() {
  keepToken();
  clearProblem();
  if (!el.token.value.trim()) {
    say("Paste a token to load the models.");
    return;
  }
  say("Loading models…");
  try {
    const body = await api.models();
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
  el.imageField.hidden = !NEEDS_IMAGE.has(el.task.value);
  el.maskField.hidden = el.task.value !== "edit";
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
  for (const [field, input, box] of [
    ["image", el.image, el.imageField],
    ["mask", el.mask, el.maskField],
  ]) {
    if (box.hidden) continue;
    const file = input.files?.[0];
    if (!file) throw new ApiProblem(`The ${body.task} task needs an input ${field}.`);
    body[field] = await readDataUrl(file);
  }
  return body;
}

async function submit(event) {
  event.preventDefault();
  clearProblem();
  keepToken();
  el.submit.disabled = true;
  try {
    const body = await requestBody();
    say("Submitting…");
    const job = await api.submit(body);
    const entry = {
      id: job.id,
      modality: body.modality,
      label: `${body.family}/${body.model} · ${body.task} · ${body.format}`,
      created_at: job.created_at,
      status: job.status,
    };
    rememberJob(entry);
    recent.render();
    show(entry, job);
  } catch (err) {
    say("The job was not submitted.");
    showProblem(err);
  } finally {
    el.submit.disabled = models.size === 0;
  }
}

// ---- the job on show ---------------------------------------------------------------------------------

function resetJobView(entry) {
  clearProblem();
  el.jobId.textContent = entry.id;
  el.jobModel.textContent = entry.label ?? "—";
  for (const dd of [el.jobState, el.jobPosition, el.jobEta, el.progressText]) dd.textContent = "—";
  el.progress.value = 0;
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
  if (status !== "queued") el.jobPosition.textContent = "—";
  if (TERMINAL.has(status)) el.jobEta.textContent = "—";
  recent.update(current.id, status);
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
  const kind = modality === "video" ? "video" : "image";
  el.result.replaceChildren();
  urls.forEach((raw, i) => {
    const url = safeUrl(raw);
    if (!url) return;
    const n = urls.length > 1 ? ` ${i + 1}` : "";
    const media = document.createElement(kind === "video" ? "video" : "img");
    if (kind === "video") {
      media.controls = true;
      media.playsInline = true;
      media.preload = "metadata";
      media.setAttribute("aria-label", `Generated video${n}`);
    } else {
      media.alt = `Generated image${n}`;
    }
    media.src = url;
    const link = document.createElement("a");
    link.href = url;
    link.rel = "noreferrer";
    link.target = "_blank";
    link.textContent = `Open the ${kind}${n} in a new tab`;
    el.result.append(media, link);
  });
}

/** One event of the job on show (API.md §3 Events), or the same from its GET /jobs/{id}. */
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
 * Shows a job (`job`: its 202 or its GET /jobs/{id} body). A finished one is shown as it ended; one
 * still queued or running is followed over its events until it ends.
 */
function show(entry, job) {
  current?.controller.abort();
  const controller = new AbortController();
  current = { id: entry.id, modality: entry.modality, controller };
  resetJobView(entry);
  setState(job.status);
  if (job.status === "complete") onEvent("complete", job);
  else if (job.status === "error" || job.status === "cancelled") onEvent("error", job.error ?? {});
  else {
    if (job.position !== undefined) showPosition(job);
    else say(`Following job ${entry.id}.`);
    if (job.status === "running" && typeof job.progress === "number") onEvent("progress", job);
    followJob(api, entry.id, { signal: controller.signal, onEvent })
      .then((how) => {
        if (how === "lost")
          say("Lost the event stream. Use Show in the recent jobs to follow the job again.");
      })
      .catch((err) => {
        say("Could not follow the job.");
        showProblem(err);
      });
  }
}

async function cancel(id) {
  clearProblem();
  try {
    // Queued: cancelled at once (204). Running: cancelled too (202), and the worker aborts the
    // backend call. Either way the job is over: its event stream, if shown, is closed here.
    const job = await api.cancel(id);
    recent.update(id, job.status);
    if (current?.id === id && job.status === "cancelled") {
      current.controller.abort();
      setState("cancelled");
    }
    say(`Cancelled job ${id}.`);
  } catch (err) {
    say(`Job ${id} was not cancelled.`);
    showProblem(err);
  }
}

// ---- recent jobs -------------------------------------------------------------------------------------

/** Reads a listed job and shows it. */
async function showListed(entry) {
  clearProblem();
  try {
    const job = await api.job(entry.id);
    recent.update(entry.id, job.status);
    show({ ...entry, modality: job.modality ?? entry.modality }, job);
  } catch (err) {
    say(`Could not read job ${entry.id}.`);
    showProblem(err);
  }
}

/** Reads every listed job's state again, one request at a time (reads are rate limited). */
async function refreshRecent() {
  if (!el.token.value.trim()) return;
  for (const entry of loadRecent()) {
    try {
      recent.update(entry.id, (await api.job(entry.id)).status);
    } catch (err) {
      // 404: expired, or submitted with another token
      if (err instanceof ApiProblem && err.status === 404) recent.update(entry.id, "not found");
      else return showProblem(err);
    }
  }
}

// ---- start -------------------------------------------------------------------------------------------

const kept = loadToken();
el.token.value = kept.token;
el.remember.checked = kept.remember;
el.access.addEventListener("submit", (e) => {
  e.preventDefault();
  void loadModels();
});
el.remember.addEventListener("change", keepToken);
el.model.addEventListener("change", modelChanged);
el.task.addEventListener("change", taskChanged);
el.generate.addEventListener("submit", (e) => void submit(e));
el.cancel.addEventListener("click", () => current && void cancel(current.id));
el.refresh.addEventListener("click", () => void refreshRecent());
el.forget.addEventListener("click", () => {
  saveRecent([]);
  recent.render();
});
recent.render();
if (el.token.value) void loadModels();
else say("Paste a token and load the models to start.");
