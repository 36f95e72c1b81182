// Turns stored jobs and events into their public form: absolute signed output URLs, ETAs.
import { objectUrlSigner } from "../core/url-signing.js";
import { queuedEtaSeconds, runningEtaSeconds } from "../core/eta.js";
import { toPublicJob, type JobRecord } from "../core/job.js";
import type { Clock } from "../core/time.js";
import { parseRoute } from "../core/model-route.js";
import type { CapacityView } from "./capacity.js";

export interface Presenter {
  /** Absolute URL of a path on this gateway (PUBLIC_URL). */
  absolute(path: string): string;
  /** Signed, absolute URL of an object digest. */
  objectUrl(digest: string): string;
  /**
   * The public job; `viewer.admin` adds each attempt's error code and detail (core/job.ts); `held`:
   * it waits only for its tenant's running-at-once limit (`held: "concurrency_limit"`, API.md §3).
   */
  job(
    job: JobRecord,
    position: number,
    viewer?: { readonly admin: boolean },
    held?: boolean,
  ): Promise<Record<string, unknown>>;
  /** Event data with digests replaced by signed URLs. */
  eventData(event: string, data: Record<string, unknown>): Record<string, unknown>;
}

/**
 * The ETA of a queued or running job (API.md §3; docs/decisions.md "Queue, positions and ETAs"),
 * from the job's estimated cost (its work units at its model's rate) and the capacity that can run
 * its route (`family/model` or `family/model@<backend constraint>`) now; undefined for finished jobs
 * and for a queued job that no capacity serves. The one computation behind `GET /jobs/{id}` and the
 * SSE `position` events.
 */
export async function etaSecondsOf(
  capacity: CapacityView,
  clock: Clock,
  job: Pick<JobRecord, "status" | "route" | "attemptLog" | "work">,
  position: number,
): Promise<number | undefined> {
  if (job.status !== "queued" && job.status !== "running") return undefined;
  const { familyModel, constraint } = parseRoute(job.route);
  const snapshot = await capacity.snapshot();
  const costMs = snapshot.costMs(familyModel, job.work ?? 1);
  if (job.status === "running") {
    const now = clock();
    return runningEtaSeconds(now - (job.attemptLog.at(-1)?.started_at ?? now), costMs);
  }
  return queuedEtaSeconds(position, snapshot.basis(familyModel, constraint, costMs), costMs);
}

export function createPresenter(opts: {
  /** PUBLIC_URL (read per call: the API learns its own address only once it listens). */
  publicUrl: () => string;
  urlKey: Uint8Array;
  outputUrlTtlS: number;
  clock: Clock;
  capacity: CapacityView;
}): Presenter {
  const base = () => opts.publicUrl().replace(/\/$/, "");
  const objectUrl = objectUrlSigner(opts);

  return {
    absolute: (path) => base() + path,
    objectUrl,

    async job(job, position, viewer, held) {
      const etaSeconds = await etaSecondsOf(opts.capacity, opts.clock, job, position);
      const pub = toPublicJob(job, {
        urlFor: objectUrl,
        ...(viewer?.admin === true ? { admin: true } : {}),
        ...(position >= 0 ? { position } : {}),
        ...(etaSeconds === undefined ? {} : { etaSeconds }),
      });
      if (held === true && job.status === "queued") pub.held = "concurrency_limit";
      return pub;
    },

    eventData(event, data) {
      if (event !== "complete") return data;
      const out: Record<string, unknown> = { ...data };
      if (typeof data.output === "string") out.output = objectUrl(data.output);
      if (Array.isArray(data.outputs)) out.outputs = data.outputs.map((d) => objectUrl(String(d)));
      return out;
    },
  };
}
