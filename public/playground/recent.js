// The recent-jobs list: one row per job kept in the browser (store.js), with its last known state and
// Show / Cancel buttons. Rows are updated in place, so a keyboard user keeps their place.
import { TERMINAL } from "./api.js";
import { loadRecent, updateJobState } from "./store.js";

function button(text, label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

/**
 * The list in `list` (an <ol>), `empty` shown while it has no row; `onShow(entry)` and `onCancel(id)`
 * are the buttons' actions.
 */
export function createRecentList({ list, empty, onShow, onCancel }) {
  function setState(li, status) {
    const state = li.querySelector(".state");
    state.className = `state state-${status.replace(/[^a-z]/g, "")}`;
    state.textContent = status;
    const cancel = li.querySelector(".cancel");
    if (TERMINAL.has(status) || status === "not found") {
      // the focus stays in the row when the button it was on goes away
      if (cancel !== null && cancel === document.activeElement) li.querySelector(".show").focus();
      cancel?.remove();
    } else if (!cancel) {
      const id = li.dataset.jobId;
      li.querySelector(".actions").append(button("Cancel", `Cancel job ${id}`, "cancel", () => onCancel(id)));
    }
  }

  function row(entry) {
    const li = document.createElement("li");
    li.dataset.jobId = entry.id;
    const what = document.createElement("span");
    what.className = "what";
    what.textContent = String(entry.label ?? entry.modality ?? "job");
    const id = document.createElement("span");
    id.className = "id";
    const when = Date.parse(entry.created_at);
    id.textContent = `${entry.id}${Number.isNaN(when) ? "" : ` · ${new Date(when).toLocaleString()}`}`;
    what.append(id);
    const state = document.createElement("span");
    state.className = "state";
    const actions = document.createElement("span");
    actions.className = "actions";
    actions.append(button("Show", `Show job ${entry.id}`, "show", () => onShow(entry)));
    li.append(what, state, actions);
    setState(li, typeof entry.status === "string" ? entry.status : "unknown");
    return li;
  }

  return {
    /** Draws the list again from the store. */
    render() {
      const entries = loadRecent();
      empty.hidden = entries.length > 0;
      list.replaceChildren(...entries.map(row));
    },
    /** Records a job's state in the store and in its row. */
    update(id, status) {
      if (!updateJobState(id, status)) return;
      const li = [...list.children].find((node) => node.dataset.jobId === id);
      if (li) setState(li, status);
    },
  };
}
