// The unknown-setting rule: an environment variable that looks like one of ours but is not one stops
// the process (docs/decisions.md "Configuration"), so a misspelt JWT_PUBLIC_KEY cannot pass silently.

/** Families claimed besides those derived from the schema (README "Environment"). */
const EXTRA_FAMILIES = ["WORKER"];
/**
 * First words too common in other software's variables to claim as a family (API_URL, HTTP_PORT,
 * INPUT_* of GitHub Actions, JOB_*, DEFAULT_*; CLICKHOUSE_USER, _PASSWORD, _DB of ClickHouse's own
 * images and tools): names there are refused only when close to ours.
 */
const GENERIC_WORDS = new Set(["API", "HTTP", "INPUT", "JOB", "DEFAULT", "SYNC", "MIN", "MAX", "CLICKHOUSE"]);
/**
 * Settings API.md names that this version does not implement yet, refused with that reason (name →
 * message); none since pools (POOLS_FILE, WORKER_POOL) and Cluster (REDIS_CLUSTER_NODES) came.
 */
const NOT_YET: ReadonlyMap<string, string> = new Map();
/** Standard variables inside our families that belong to other software. */
const FOREIGN = new Set(["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"]);
/**
 * Kubernetes service links: for a Service named `redis` the kubelet sets REDIS_SERVICE_HOST,
 * REDIS_SERVICE_PORT(_<name>), REDIS_PORT and REDIS_PORT_6379_TCP(_PROTO|_PORT|_ADDR).
 */
const SERVICE_LINK_RE =
  /^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$/;
/** Names longer than this are never compared (bounds the edit-distance work). */
const MAX_COMPARED_CHARS = 64;

/** The family `name` would belong to: its first word, or its first two after a generic first word. */
function familyWordOf(name: string): string | undefined {
  const i = name.indexOf("_");
  if (i <= 0) return undefined;
  if (!GENERIC_WORDS.has(name.slice(0, i))) return name.slice(0, i);
  const j = name.indexOf("_", i + 1);
  return j > i + 1 ? name.slice(0, j) : undefined;
}

/**
 * The prefix families of `known`: the first word (up to the first `_`) that at least two known
 * names share (JWT_, JWKS_, REDIS_, SIM_, CAS_, …), or the first two words after a generic first one
 * (API_KEY_), plus WORKER_.
 */
export function familiesOf(known: readonly string[]): ReadonlySet<string> {
  const counts = new Map<string, number>();
  for (const name of known) {
    const word = familyWordOf(name);
    if (word !== undefined) counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const families = new Set(EXTRA_FAMILIES);
  for (const [word, n] of counts) if (n >= 2) families.add(word);
  return families;
}

/** Levenshtein distance, giving up (returning `max + 1`) once it must exceed `max`. */
export function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row.push(v);
      best = Math.min(best, v);
    }
    if (best > max) return max + 1;
    prev = row;
  }
  return prev[b.length]!;
}

/** How far a name may be from a known one and still count as a misspelling of it. */
const tolerance = (known: string): number => (known.length >= 8 ? 2 : 1);

/**
 * One message per variable of `names` that looks like a setting of ours but is not one of `known`:
 * its name, upper-cased, is within edit distance 2 of a known name (1 for names under 8 characters,
 * so HOME is not taken for HOST) or lacks only a unit suffix (`_MS`, `_S`), or starts with a family's
 * `WORD_` (see {@link familiesOf}). Proxy
 * variables and Kubernetes service links are never refused. A close known name is suggested.
 */
export function unknownSettings(names: readonly string[], known: readonly string[]): string[] {
  const knownSet = new Set(known);
  const families = familiesOf(known);
  const problems: string[] = [];
  for (const name of names) {
    if (knownSet.has(name)) continue;
    const upper = name.toUpperCase();
    if (FOREIGN.has(upper) || SERVICE_LINK_RE.test(name)) continue;
    const notYet = NOT_YET.get(name);
    if (notYet !== undefined) {
      problems.push(notYet);
      continue;
    }
    let suggestion: string | undefined;
    let best = Number.POSITIVE_INFINITY;
    for (const k of name.length > MAX_COMPARED_CHARS ? [] : known) {
      // A unit suffix left off (JWKS_COOLDOWN for JWKS_COOLDOWN_MS) counts as distance 1.
      const d =
        k.startsWith(`${upper}_`) && k.length - upper.length <= 3 ? 1 : editDistance(upper, k, tolerance(k));
      if (d <= tolerance(k) && d < best) {
        best = d;
        suggestion = k;
      }
    }
    // a family's own word alone (JWKS) counts as in it, too
    const word = familyWordOf(upper) ?? upper;
    const inFamily = name === upper && families.has(word);
    if (suggestion === undefined && !inFamily) continue;
    problems.push(
      `${name}: not a render-gateway setting${suggestion === undefined ? "" : ` (did you mean ${suggestion}?)`}`,
    );
  }
  return problems;
}
