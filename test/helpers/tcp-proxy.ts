// A TCP proxy in front of the test redis-server that can stall a connection the moment a chosen call
// goes through it, the way a paused or unreachable Redis looks to a client: the call reaches Redis
// only after the stall, and every reply waits with it. A network fault injector, not a Redis fake.
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
  /** Resolves once an armed stall has started and ended. */
  stalled(): Promise<void>;
  /** Disarms a stall that never started and waits for one that did to end (between tests). */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultProxy(targetUrl: string): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  let armed: { marker: string; ms: number; drop: boolean } | undefined;
  let holds = 0;
  let done: () => void = () => undefined;
  let finished = Promise.resolve();

  const server: Server = createServer((client) => {
    const upstream = new Socket();
    sockets.add(client).add(upstream);
    let holding = false;
    const toServer: Buffer[] = [];
    const toClient: Buffer[] = [];
    const release = () => {
      holding = false;
      holds -= 1;
      for (const b of toServer.splice(0)) upstream.write(b);
      for (const b of toClient.splice(0)) client.write(b);
      done();
    };
    client.on("data", (chunk: Buffer) => {
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
      if (holding) toClient.push(chunk);
      else client.write(chunk);
    });
    const end = () => {
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
    stalled: () => finished,
    async settle() {
      if (armed !== undefined) {
        armed = undefined;
        done();
      }
      if (holds > 0) await finished;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
