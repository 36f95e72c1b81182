// A TCP proxy in front of the test redis-server that can stall a connection the moment a chosen call
// goes through it, the way a paused or unreachable Redis looks to a client: the call reaches Redis
// only after the stall, and every reply waits with it; or hold a connection (chosen by a call or by
// the name its client gave it) until the test releases it. A network fault injector, not a Redis fake.
import { createServer, Socket, type AddressInfo, type Server } from "node:net";

export interface FaultProxy {
  readonly url: string;
  /**
   * Arms one stall: the first client chunk containing `marker` (and all traffic of its connection,
   * both ways, from then on) is held for `ms`, then everything is delivered in order.
   */
  stallOn(marker: string, ms: number): void;
  /**
   * Arms one loss: the first client chunk containing `marker` never reaches Redis, and its connection
   * is cut `ms` later (a call lost on the way, its reply never coming).
   */
  dropOn(marker: string, ms: number): void;
  /**
   * Arms one hold without a time limit: the first client chunk containing `marker` and all traffic of
   * its connection, both ways, from then on wait until {@link Hold.release}.
   */
  holdOn(marker: string): Hold;
  /**
   * Holds, from now until {@link Hold.release}, all traffic both ways of every open connection whose
   * client named itself `name` (`CLIENT SETNAME`, ioredis's `connectionName`).
   */
  holdConnections(name: string): Hold;
  /**
   * Arms one hold of replies: the first client chunk containing `marker` reaches Redis, and what
   * Redis sends back on that connection from then on waits until {@link Hold.release} (the client's
   * own traffic keeps flowing). A reply that is on its way while the client does something else.
   */
  holdRepliesAfter(marker: string): ReplyHold;
  /** Resolves once an armed stall has started and ended. */
  stalled(): Promise<void>;
  /** Disarms a stall that never started and waits for one that did to end (between tests). */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** A hold of {@link FaultProxy.holdOn} or {@link FaultProxy.holdConnections}. */
export interface Hold {
  /** Resolves once a connection is held (for holdConnections: at once, when it found one). */
  readonly started: Promise<void>;
  /** Connections held so far. */
  readonly connections: number;
  /** Delivers what was held, in order, and lets traffic flow again. Idempotent. */
  release(): void;
}

/** A hold of {@link FaultProxy.holdRepliesAfter}. */
export interface ReplyHold extends Hold {
  /** Resolves once a reply is held (released, it is delivered). */
  readonly replied: Promise<void>;
}

interface HoldState extends Hold {
  /** Holds one more connection (it calls `free` on release). */
  add(free: () => void): void;
}

function createHold(): HoldState {
  let started: () => void = () => undefined;
  const startedP = new Promise<void>((r) => (started = r));
  const frees: (() => void)[] = [];
  let released = false;
  return {
    started: startedP,
    get connections() {
      return frees.length;
    },
    add(free) {
      if (released) return free();
      frees.push(free);
      started();
    },
    release() {
      if (released) return;
      released = true;
      started();
      for (const free of frees) free();
    },
  };
}

/** The name a client gave its connection with CLIENT SETNAME, as RESP carries it. */
const SETNAME = /setname\r\n\$\d+\r\n([^\r]*)\r\n/i;

export async function startFaultProxy(targetUrl: string): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let armed: { marker: string; ms: number; drop: boolean } | undefined;
  let armedHold: { marker: string; hold: HoldState } | undefined;
  let armedReplies: { marker: string; hold: HoldState; replied: () => void } | undefined;
  const openHolds: HoldState[] = [];
  /** Open connections by the name their client gave them, each with a function that holds it. */
  const named = new Set<{ name: string | undefined; hold: (h: HoldState) => void }>();
  let holds = 0;
  let done: () => void = () => undefined;
  let finished = Promise.resolve();

  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    let holding = false;
    /** Replies wait (holdRepliesAfter); called with each held reply. */
    let holdingReplies: (() => void) | undefined;
    const toServer: Buffer[] = [];
    const toClient: Buffer[] = [];
    const flush = () => {
      for (const b of toServer.splice(0)) upstream.write(b);
      for (const b of toClient.splice(0)) client.write(b);
    };
    const release = () => {
      holding = false;
      holds -= 1;
      flush();
      done();
    };
    let chunks = 0;
    const self = {
      name: undefined as string | undefined,
      hold(h: HoldState) {
        if (holding) return;
        holding = true;
        h.add(() => {
          holding = false;
          flush();
        });
      },
    };
    named.add(self);
    client.on("data", (chunk: Buffer) => {
      // ioredis names its connection in its first commands
      if (self.name === undefined && chunks++ < 4) self.name = SETNAME.exec(chunk.toString("latin1"))?.[1];
      if (!holding && armedHold && chunk.includes(armedHold.marker)) {
        const { hold } = armedHold;
        armedHold = undefined;
        self.hold(hold);
      }
      if (!holding && holdingReplies === undefined && armedReplies && chunk.includes(armedReplies.marker)) {
        const { hold, replied } = armedReplies;
        armedReplies = undefined;
        holdingReplies = replied;
        hold.add(() => {
          holdingReplies = undefined;
          if (!holding) for (const b of toClient.splice(0)) client.write(b);
        });
      }
      if (!holding && armed && chunk.includes(armed.marker)) {
        const { ms, drop } = armed;
        armed = undefined;
        holding = true;
        holds += 1;
        if (drop) {
          setTimeout(() => {
            toServer.length = 0;
            toClient.length = 0;
            end();
            holds -= 1;
            done();
          }, ms);
          return;
        }
        setTimeout(release, ms);
      }
      if (holding) toServer.push(chunk);
      else upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (holding || holdingReplies !== undefined) {
        toClient.push(chunk);
        holdingReplies?.();
      } else client.write(chunk);
    });
    const end = () => {
      named.delete(self);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    upstream.connect(Number(target.port), target.hostname);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    stallOn(marker, ms) {
      finished = new Promise<void>((r) => (done = r));
      armed = { marker, ms, drop: false };
    },
    dropOn(marker, ms) {
      finished = new Promise<void>((r) => (done = r));
      armed = { marker, ms, drop: true };
    },
    holdOn(marker) {
      const hold = createHold();
      openHolds.push(hold);
      armedHold = { marker, hold };
      return hold;
    },
    holdConnections(name) {
      const hold = createHold();
      openHolds.push(hold);
      for (const c of named) if (c.name === name) c.hold(hold);
      return hold;
    },
    holdRepliesAfter(marker) {
      const hold = createHold();
      openHolds.push(hold);
      let replied: () => void = () => undefined;
      const repliedP = new Promise<void>((r) => (replied = r));
      armedReplies = { marker, hold, replied };
      return Object.assign(hold, { replied: repliedP });
    },
    stalled: () => finished,
    async settle() {
      if (armed !== undefined) {
        armed = undefined;
        done();
      }
      if (holds > 0) await finished;
    },
    async close() {
      armedHold = undefined;
      armedReplies = undefined;
      for (const h of openHolds) h.release();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
