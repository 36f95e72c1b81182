// The outbound client's own resolver (public targets): DNS queries through c-ares, against a fake DNS
// server on loopback — one that answers, and one that never does. A name whose DNS never answers must
// give up in time and must not hold the process's other lookups (getaddrinfo would: it runs on
// libuv's thread pool, at most two lookups at a time per process).
import { createSocket, type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dnsResolver, guardedLookup } from "../../src/infra/outbound-http.js";
import { OutboundError } from "../../src/core/ports.js";

/** A DNS server on loopback: A records from `answers` (by name), AAAA none; `hang` names never answered. */
async function fakeDnsServer(answers: Record<string, string>, hang: (name: string) => boolean) {
  const queries: string[] = [];
  const sock: Socket = createSocket("udp4");
  sock.on("message", (msg, peer) => {
    let i = 12;
    const labels: string[] = [];
    while (msg[i]! !== 0) {
      labels.push(msg.toString("latin1", i + 1, i + 1 + msg[i]!));
      i += 1 + msg[i]!;
    }
    const name = labels.join(".");
    const qtype = msg.readUInt16BE(i + 1);
    const question = msg.subarray(12, i + 5);
    queries.push(`${name}/${qtype}`);
    if (hang(name)) return;
    const ip = qtype === 1 ? answers[name] : undefined;
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8180 | (ip === undefined && answers[name] === undefined ? 3 : 0), 2);
    header.writeUInt16BE(1, 4); // one question
    header.writeUInt16BE(ip === undefined ? 0 : 1, 6);
    const answer =
      ip === undefined
        ? Buffer.alloc(0)
        : Buffer.concat([
            Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]),
            Buffer.from(ip.split(".").map(Number)),
          ]);
    sock.send(Buffer.concat([header, question, answer]), peer.port, peer.address);
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  return { server: `127.0.0.1:${sock.address().port}`, queries, close: () => sock.close() };
}

let dns: Awaited<ReturnType<typeof fakeDnsServer>>;
beforeAll(async () => {
  dns = await fakeDnsServer(
    { "images.example.test": "93.184.216.34", "inside.example.test": "10.1.2.3" },
    (name) => name.startsWith("slow"),
  );
});
afterAll(() => dns.close());

describe("the outbound client's DNS resolver", () => {
  it("answers the addresses DNS gives, and no such name as ENOTFOUND", async () => {
    const resolve = dnsResolver({ timeoutMs: 2_000, servers: [dns.server] });
    expect(await resolve("images.example.test")).toEqual([{ address: "93.184.216.34", family: 4 }]);
    expect(dns.queries).toEqual(expect.arrayContaining(["images.example.test/1", "images.example.test/28"]));
    await expect(resolve("nothing.example.test")).rejects.toMatchObject({ code: "ENOTFOUND" });
  });

  it("feeds the connect-time check: a name DNS answers with a private address is refused", async () => {
    const check = guardedLookup(dnsResolver({ timeoutMs: 2_000, servers: [dns.server] }), false);
    const err = await new Promise<unknown>((r) => check("inside.example.test", { all: true }, (e) => r(e)));
    expect(err).toBeInstanceOf(OutboundError);
    expect((err as OutboundError).code).toBe("blocked_target");
  });

  it("gives up on a name whose DNS never answers, without holding the process's other lookups", async () => {
    const resolve = dnsResolver({ timeoutMs: 600, servers: [dns.server] });
    const started = Date.now();
    const pending = Array.from({ length: 8 }, (_, i) =>
      resolve(`slow${i}.example.test`).then(
        () => "answered",
        (e: NodeJS.ErrnoException) => e.code,
      ),
    );
    // All eight are waiting for their answers: their queries have reached the DNS server.
    const asked = () => new Set(dns.queries.filter((q) => q.startsWith("slow")).map((q) => q.split("/")[0]));
    while (asked().size < 8) await new Promise((r) => setTimeout(r, 5));
    // A hosts-file lookup (getaddrinfo, on the thread pool) is not kept waiting by them.
    const t = Date.now();
    await lookup("localhost");
    expect(Date.now() - t).toBeLessThan(300);
    expect(await Promise.all(pending)).toEqual(Array(8).fill("EAI_AGAIN"));
    expect(Date.now() - started).toBeLessThan(1_500);
  });
});
