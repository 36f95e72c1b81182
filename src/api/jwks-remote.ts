// The keys of an identity provider's JWKS endpoint (JWKS_URL): cached, refetched for new kids at most
// once per cool-down, kept while the endpoint is down (docs/decisions.md "Identity").
import type { Clock } from "../core/time.js";
import { importJwks, type PublicAlgorithm, type PublicKey } from "./jwt-keys.js";

/** Options of {@link createRemoteKeySet}. */
export interface RemoteKeySetOptions {
  /** The JWKS URL (http(s); the env schema allows plain http for loopback only). */
  readonly url: URL;
  /** Least time between two fetches, whatever asks for them (JWKS_COOLDOWN_MS). */
  readonly cooldownMs: number;
  /** Age after which the keys are refetched in the background (JWKS_CACHE_MAX_AGE_MS). */
  readonly maxAgeMs: number;
  /** Deadline of one fetch, body included (JWKS_TIMEOUT_MS). */
  readonly timeoutMs: number;
  /** Largest JWKS body read; default 256 KiB. */
  readonly maxBytes?: number;
  readonly clock: Clock;
  readonly fetch?: typeof globalThis.fetch;
}

/** What {@link RemoteKeySet.status} reports (GET /ready admin details). */
export interface RemoteKeySetStatus {
  readonly url: string;
  /** ISO time of the last successful fetch, or null. */
  readonly last_refresh: string | null;
  /** Why the last fetch failed, when it did (cleared by a success), and when. */
  readonly last_error: string | null;
  readonly last_error_at: string | null;
  readonly fetches: number;
  /** The keys held now. */
  readonly keys: readonly { kid: string | null; alg: PublicAlgorithm }[];
  /** Keys of the last JWKS this gateway cannot use (other types, private, malformed). */
  readonly skipped: number;
}

/** The keys of one JWKS endpoint. */
export interface RemoteKeySet {
  /**
   * The key for a token header: by `kid`, or, without one, the only key of `alg`. A kid not held
   * joins the fetch in flight, or starts one once the cool-down since the last one has passed, or
   * waits for the one the cool-down allows next, unless the last fetch already lacked it.
   * @returns undefined when no key fits (the caller answers 401).
   */
  resolve(alg: PublicAlgorithm, kid: string | undefined): Promise<PublicKey | undefined>;
  /** Fetches now (single flight); never rejects: a failure is kept in {@link status}. */
  refresh(): Promise<void>;
  /** Called after a fetch that dropped or changed a key (the caller forgets cached verifications). */
  onKeysRemoved(listener: () => void): void;
  status(): RemoteKeySetStatus;
  /** Cancels a scheduled fetch and aborts one in flight. */
  close(): void;
}

/** Most kids remembered as missing from the last fetch; beyond it new kids do not wait for a fetch. */
const MAX_MISSING = 1_024;
/**
 * Unknown kids waiting at once for a fetch (in flight, or the next the cool-down allows): a request
 * for another one is refused at once, so a flood of forged kids cannot hold connections open by the
 * thousand. A rotation brings one new kid (or a few): the requests for a kid already waiting join
 * it, uncounted here, so no number of tokens of a new key is refused while its fetch is awaited.
 */
const MAX_WAITING_KIDS = 256;
/** Requests waiting at once for a fetch, whatever their kid (a bound on the memory they hold). */
const MAX_WAITING = 20_000;
const DEFAULT_MAX_BYTES = 256 * 1024;

/** The URL as shown to admins: no credentials, no query (it may carry a token). */
function displayUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

async function readBounded(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw new Error(`JWKS larger than ${maxBytes} bytes`);
  const reader: ReadableStreamDefaultReader<Uint8Array> | undefined = res.body?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new Error(`JWKS larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The key set of `opts.url`. Nothing is fetched until {@link RemoteKeySet.refresh} or the first token;
 * keys stay usable while the endpoint fails, and a stale set is refreshed in the background.
 * @throws RangeError for a duration that is not a positive integer.
 */
export function createRemoteKeySet(opts: RemoteKeySetOptions): RemoteKeySet {
  for (const [name, v] of Object.entries({
    cooldownMs: opts.cooldownMs,
    maxAgeMs: opts.maxAgeMs,
    timeoutMs: opts.timeoutMs,
  })) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${name} must be a positive integer`);
  }
  const { clock, url, cooldownMs, maxAgeMs, timeoutMs } = opts;
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const fetchImpl = opts.fetch ?? globalThis.fetch;
  const closing = new AbortController();
  const listeners: (() => void)[] = [];

  let keys: readonly PublicKey[] = [];
  let skipped = 0;
  let fetchedAt: number | undefined;
  let attemptAt: number | undefined;
  let lastError: { message: string; at: number } | undefined;
  let fetches = 0;
  let inflight: Promise<void> | undefined;
  let scheduled: { promise: Promise<void>; timer: NodeJS.Timeout; release: () => void } | undefined;
  /** Kids asked for that the last completed fetch did not have. */
  const missing = new Set<string>();
  /** Kids asked for and not yet settled by a fetch, with the fetches started before they were. */
  const firstAsked = new Map<string, number>();

  /**
   * One fetch under its own deadline. The deadline is a plain timer held until the fetch ends: an
   * `AbortSignal.timeout` passed through `AbortSignal.any` is only weakly held, and once garbage
   * collected it never fires, which left a hung endpoint's fetch in flight forever.
   */
  async function load(): Promise<{ keys: readonly PublicKey[]; skipped: number }> {
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    const onClose = (): void => deadline.abort(closing.signal.reason);
    closing.signal.addEventListener("abort", onClose, { once: true });
    if (closing.signal.aborted) onClose();
    try {
      const res = await fetchImpl(url, {
        redirect: "manual",
        signal: deadline.signal,
        headers: { accept: "application/jwk-set+json, application/json" },
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`JWKS endpoint answered ${res.status}`);
      }
      let doc: unknown;
      try {
        doc = JSON.parse(await readBounded(res, maxBytes));
      } catch (err) {
        if (deadline.signal.aborted) throw err;
        throw new Error(`JWKS unreadable: ${(err as Error).message}`);
      }
      return await importJwks(doc, false);
    } finally {
      clearTimeout(timer);
      closing.signal.removeEventListener("abort", onClose);
    }
  }

  function refresh(): Promise<void> {
    if (inflight !== undefined) return inflight;
    attemptAt = clock();
    fetches += 1;
    const current = load().then(
      (next) => {
        const kept = new Set(next.keys.map((k) => k.fingerprint));
        const removed = keys.some((k) => !kept.has(k.fingerprint));
        keys = next.keys;
        skipped = next.skipped;
        fetchedAt = clock();
        lastError = undefined;
        missing.clear();
        if (removed) for (const l of listeners) l();
      },
      (err: unknown) => {
        const e = err as Error;
        // (an error may quote the URL: never its query or credentials, as in status())
        const message =
          e.name === "TimeoutError"
            ? `no answer within ${timeoutMs} ms`
            : e.message.split(url.href).join(displayUrl(url));
        lastError = { message: message.slice(0, 300), at: clock() };
        missing.clear();
      },
    );
    const settled: Promise<void> = current.finally(() => {
      if (inflight === settled) inflight = undefined;
    });
    inflight = settled;
    return settled;
  }

  let waiting = 0;
  /** Requests waiting for a fetch, per kid (see {@link MAX_WAITING_KIDS}). */
  const waitingKids = new Map<string, number>();
  const mayWait = (name: string): boolean =>
    waiting < MAX_WAITING && (waitingKids.has(name) || waitingKids.size < MAX_WAITING_KIDS);
  /** Waits for `p` as a request for the kid `name`, counted while it waits. */
  async function waitFor(name: string, p: Promise<void>): Promise<void> {
    waiting += 1;
    waitingKids.set(name, (waitingKids.get(name) ?? 0) + 1);
    try {
      await p;
    } finally {
      waiting -= 1;
      const left = waitingKids.get(name)! - 1;
      if (left === 0) waitingKids.delete(name);
      else waitingKids.set(name, left);
    }
  }

  const coolingDown = (): boolean => attemptAt !== undefined && clock() - attemptAt < cooldownMs;

  /** The fetch the cool-down allows next (one timer shared by every waiter). */
  function nextAllowedFetch(): Promise<void> {
    if (scheduled !== undefined) return scheduled.promise;
    const delay = Math.min(cooldownMs, Math.max(0, (attemptAt ?? 0) + cooldownMs - clock()));
    let timer!: NodeJS.Timeout;
    let release!: () => void;
    const promise = new Promise<void>((resolve) => {
      release = resolve;
      timer = setTimeout(() => {
        scheduled = undefined;
        void refresh().then(resolve);
      }, delay);
    });
    scheduled = { promise, timer, release };
    return promise;
  }

  function find(alg: PublicAlgorithm, kid: string | undefined): PublicKey | undefined {
    if (kid !== undefined) {
      // A kid may name keys of several types (RFC 7517 §4.5 only asks kids to differ within a type).
      return keys.find((key) => key.kid === kid && key.alg === alg);
    }
    const ofAlg = keys.filter((key) => key.alg === alg);
    return ofAlg.length === 1 ? ofAlg[0] : undefined;
  }

  return {
    async resolve(alg, kid) {
      if (fetchedAt !== undefined && clock() - fetchedAt >= maxAgeMs && !coolingDown()) void refresh();
      const held = find(alg, kid);
      if (held !== undefined) return held;
      // A kid the set holds under another algorithm, or several keys without a kid: no fetch helps.
      if (kid !== undefined ? keys.some((k) => k.kid === kid) : keys.some((k) => k.alg === alg))
        return undefined;
      const name = kid ?? `(no kid, ${alg})`;
      if (closing.signal.aborted) return undefined;
      // how many fetches had started when the kid was first asked for (a fetch that started before
      // then may predate its publication: only a fetch started since can say the kid is unknown)
      let askedAfter = firstAsked.get(name);
      if (askedAfter === undefined) {
        askedAfter = fetches;
        if (firstAsked.size < MAX_MISSING) firstAsked.set(name, askedAfter);
      }
      if (inflight !== undefined) {
        if (!mayWait(name)) return undefined;
        const fetchNo = fetches;
        await waitFor(name, inflight);
        const found = find(alg, kid);
        if (found !== undefined || fetchNo > askedAfter) return settle(found);
        if (!mayWait(name)) return undefined;
        await waitFor(name, nextAllowedFetch());
      } else if (!coolingDown()) await refresh();
      else if (missing.has(name) || missing.size >= MAX_MISSING || !mayWait(name)) return undefined;
      else await waitFor(name, nextAllowedFetch());
      return settle(find(alg, kid));

      function settle(found: PublicKey | undefined): PublicKey | undefined {
        firstAsked.delete(name);
        if (found === undefined && missing.size < MAX_MISSING) missing.add(name);
        return found;
      }
    },
    refresh,
    onKeysRemoved(listener) {
      listeners.push(listener);
    },
    status() {
      const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
      return {
        url: displayUrl(url),
        last_refresh: iso(fetchedAt),
        last_error: lastError?.message ?? null,
        last_error_at: iso(lastError?.at),
        fetches,
        keys: keys.map((k) => ({ kid: k.kid ?? null, alg: k.alg })),
        skipped,
      };
    },
    close() {
      if (scheduled !== undefined) {
        clearTimeout(scheduled.timer);
        scheduled.release();
        scheduled = undefined;
      }
      closing.abort();
    },
  };
}
