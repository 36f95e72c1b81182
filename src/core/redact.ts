// What an operator's screen may show of job data (the admin board, README "Admin UI"): prompts,
// input images, masks and previews, URLs (webhooks, signed object and upload URLs) and secret-looking
// fields and values are replaced, wherever they sit — also inside JSON text kept in a string (a job's
// stored request). The one redaction: every queue's job data and every board answer go through it.

/** What replaces a redacted field. */
export const REDACTED = "[redacted]";
/** What replaces a URL, a `data:` URI or a secret inside a text. */
export const REDACTED_URL = "[redacted url]";
export const REDACTED_DATA = "[redacted data]";
export const REDACTED_SECRET = "[redacted secret]";
/** What stands for a part left out (too deep, or past the node budget). */
export const TRUNCATED = "[truncated]";

/** Bounds of one call: nesting, values visited, characters of one string, JSON text parsed. */
export const REDACT_LIMITS = Object.freeze({
  depth: 24,
  nodes: 20_000,
  stringChars: 8_192,
  jsonChars: 1_048_576,
});

// Field names are compared lower-cased with everything but letters and digits removed, so
// `negative_prompt`, `negativePrompt` and `NEGATIVE-PROMPT` are one name.
const PROMPT_FIELD = /prompt/;
const MEDIA_FIELD = /(image|images|mask|masks|preview|previews)$/;
const URL_FIELD = /(url|urls|uri|href|webhook|callback)$/;
const SECRET_FIELD =
  /(secret|token|password|passwd|passphrase|authorization|cookie|apikey|signature|credential|privatekey|pepper|session)/;
const SECRET_NAMES = new Set(["auth", "key", "sig", "jwt", "bearer"]);
// Text a backend answered with (an attempt's `detail`): validation errors echo the request, prompt
// included (FastAPI's 422 has it in `input`).
const ECHO_NAMES = new Set(["detail"]);

// Values, wherever they appear in a text (a failure reason, a log line, a stored request).
const DATA_URI =
  /data:[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(?:;[A-Za-z0-9=._+-]+)*,[A-Za-z0-9+/=%._~!$&*-]*/g;
// a URL ends before trailing punctuation: "(see https://x/y)." keeps its ")."
const URL_TEXT = /\b(?:https?|wss?):\/\/[^\s"'<>]*[^\s"'<>.,;:!?)\]}]/gi;
const SECRET_TEXT =
  /\brk_[a-z0-9]{12}_[A-Za-z0-9]{20,}|\bwhsec_[A-Za-z0-9+/=]{8,}|\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|\bBearer\s+[A-Za-z0-9\-._~+/]{8,}=*/g;

/** Whether a field of this name never shows its value. */
export function isRedactedField(name: string): boolean {
  const n = name.toLowerCase().replace(/[^a-z0-9]/g, "");
  return (
    PROMPT_FIELD.test(n) ||
    MEDIA_FIELD.test(n) ||
    URL_FIELD.test(n) ||
    SECRET_FIELD.test(n) ||
    SECRET_NAMES.has(n) ||
    ECHO_NAMES.has(n)
  );
}

/** A text with its URLs, `data:` URIs and secret-looking tokens replaced, cut to the string bound. */
export function redactText(text: string): string {
  const cut = text.length > REDACT_LIMITS.stringChars ? `${text.slice(0, REDACT_LIMITS.stringChars)}…` : text;
  return cut
    .replace(DATA_URI, REDACTED_DATA)
    .replace(URL_TEXT, REDACTED_URL)
    .replace(SECRET_TEXT, REDACTED_SECRET);
}

/**
 * A copy of `value` fit to show: fields named like prompts, images, masks, previews, URLs or secrets
 * are replaced by {@link REDACTED}; every string has its URLs, `data:` URIs and secret-looking tokens
 * replaced ({@link redactText}); a string holding a JSON object or array is parsed and redacted as
 * a value (shown parsed). Bounded: past {@link REDACT_LIMITS} depth or nodes, parts become
 * {@link TRUNCATED}. The input is never modified; a second pass changes nothing.
 */
export function redact(value: unknown): unknown {
  let budget = REDACT_LIMITS.nodes;
  const walk = (v: unknown, depth: number): unknown => {
    if (budget-- <= 0 || depth > REDACT_LIMITS.depth) return TRUNCATED;
    if (typeof v === "string") return redactString(v, depth);
    if (v === null || typeof v !== "object") return v;
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      for (const item of v) {
        if (budget <= 0) {
          out.push(TRUNCATED);
          break;
        }
        out.push(walk(item, depth + 1));
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) {
      if (budget <= 0) {
        out[k] = TRUNCATED;
        break;
      }
      out[k] = isRedactedField(k) && item !== undefined && item !== null ? REDACTED : walk(item, depth + 1);
    }
    return out;
  };
  const redactString = (s: string, depth: number): unknown => {
    const t = s.trimStart();
    if ((t.startsWith("{") || t.startsWith("[")) && s.length <= REDACT_LIMITS.jsonChars) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(s);
      } catch {
        return redactText(s);
      }
      return walk(parsed, depth + 1);
    }
    return redactText(s);
  };
  return walk(value, 0);
}
