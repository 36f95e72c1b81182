// The admissions of an event-loop turn as one admit.lua call (docs/decisions.md "Admissions of a turn
// in one call"): each admission's three arguments are appended to the turn's call, which leaves at
// the end of the turn, or at once when it holds `max` admissions. The script admits them one after
// the other, as separate calls would; each caller gets its own job's reply, and all of them the
// call's error.
import type { ScriptRunner } from "./scripts.js";

/** admit.lua's reply for one job: its two numbers (the second -1 where the reply has one only). */
export type AdmitReply = readonly [number, number];

/** Sends one admission (its id, request and packed figures); resolves with its reply. */
export type AdmitSend = (id: string, request: string, figures: string) => Promise<AdmitReply>;

interface Turn {
  readonly args: string[];
  readonly waiters: { resolve: (reply: AdmitReply) => void; reject: (err: unknown) => void }[];
}

/**
 * Admissions through `run` for the order's routing key `route`, at most `max` per call; `max` 0 or
 * 1 sends each admission as a call of its own, at once.
 */
export function createAdmitBatch(run: ScriptRunner, route: string, max: number): AdmitSend {
  if (max <= 1) {
    return async (id, request, figures) => {
      const reply = (await run("admit", route, [id, request, figures])) as number[];
      return [reply[0] ?? -1, reply[1] ?? -1];
    };
  }
  let turn: Turn | undefined;
  const fail = (t: Turn, err: unknown) => {
    for (const w of t.waiters) w.reject(err);
  };
  /** Sends `t` unless it left already (full before the end of its turn). */
  const send = (t: Turn) => {
    if (turn !== t) return;
    turn = undefined;
    let call: Promise<unknown>;
    try {
      call = run("admit", route, t.args, { now: true });
    } catch (err) {
      fail(t, err);
      return;
    }
    call.then(
      (reply) => {
        const r = Array.isArray(reply) ? (reply as number[]) : [];
        for (let i = 0; i < t.waiters.length; i++)
          t.waiters[i]!.resolve([r[2 * i] ?? -1, r[2 * i + 1] ?? -1]);
      },
      (err: unknown) => fail(t, err),
    );
  };
  return (id, request, figures) =>
    new Promise<AdmitReply>((resolve, reject) => {
      let t = turn;
      if (t === undefined) {
        t = turn = { args: [], waiters: [] };
        setImmediate(send, t);
      }
      t.args.push(id, request, figures);
      t.waiters.push({ resolve, reject });
      if (t.waiters.length >= max) send(t);
    });
}
