// Redis key and channel names of the scheduler and job store. All share the prefix's hash tag.

export interface Keys {
  readonly prefix: string;
  job(id: string): string;
  events(id: string): string;
  /** Global order of queued jobs (score = order key); position = rank. */
  readonly queue: string;
  readonly stats: string;
  readonly leaseBackends: string;
  lease(backendId: string): string;
  readonly registry: string;
  readonly eventChannel: string;
  readonly wakeChannel: string;
  readonly cancelChannel: string;
}

export function createKeys(prefix: string): Keys {
  return {
    prefix,
    job: (id) => `${prefix}:job:${id}`,
    events: (id) => `${prefix}:ev:${id}`,
    queue: `${prefix}:q`,
    stats: `${prefix}:stats`,
    leaseBackends: `${prefix}:lease:backends`,
    lease: (backendId) => `${prefix}:lease:${backendId}`,
    registry: `${prefix}:backends`,
    eventChannel: `${prefix}:ch:ev`,
    wakeChannel: `${prefix}:ch:wake`,
    cancelChannel: `${prefix}:ch:cancel`,
  };
}

/** BullMQ queue carrying started attempts to the workers. */
export const RENDER_QUEUE = "render";

/** Order-key width of one priority class (2^40 admissions per class before scores would overlap). */
export const CLASS_WIDTH = 2 ** 40;
