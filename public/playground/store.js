// What the playground keeps in the browser: the token (this tab's sessionStorage, or localStorage
// when the user asks to be remembered) and the recent job ids (localStorage, never with the token:
// no API lists a customer's jobs). Storage may be unavailable (private modes throw): then nothing is
// kept and the page still works.

const TOKEN_KEY = "render-gateway.token";
const RECENT_KEY = "render-gateway.recent";
const RECENT_MAX = 20;
const JOB_ID_RE = /^j_[A-Za-z0-9]{20,64}$/;

function get(store, key) {
  try {
    return store.getItem(key);
  } catch {
    return null;
  }
}

function set(store, key, value) {
  try {
    if (value === null) store.removeItem(key);
    else store.setItem(key, value);
  } catch {
    // not kept
  }
}

/** The kept token and whether it was remembered (localStorage) rather than kept for the tab. */
export function loadToken() {
  const remembered = get(localStorage, TOKEN_KEY);
  return { token: remembered ?? get(sessionStorage, TOKEN_KEY) ?? "", remember: remembered !== null };
}

/** Keeps the token in exactly one place (or none when empty). */
export function saveToken(token, remember) {
  set(localStorage, TOKEN_KEY, remember && token ? token : null);
  set(sessionStorage, TOKEN_KEY, !remember && token ? token : null);
}

/** The recent jobs, newest first: `{id, modality, label, created_at, status}`; malformed ones dropped. */
export function loadRecent() {
  try {
    const list = JSON.parse(get(localStorage, RECENT_KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((e) => typeof e?.id === "string" && JOB_ID_RE.test(e.id)) : [];
  } catch {
    return [];
  }
}

export function saveRecent(list) {
  set(localStorage, RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX)));
}

/** Puts a job first in the list. */
export function rememberJob(entry) {
  saveRecent([entry, ...loadRecent().filter((e) => e.id !== entry.id)]);
}

/** Records a job's last known state; false when the job is not listed or the state is the same. */
export function updateJobState(id, status) {
  const list = loadRecent();
  const entry = list.find((e) => e.id === id);
  if (!entry || entry.status === status) return false;
  entry.status = status;
  saveRecent(list);
  return true;
}
