// The playground's SSE reading (public/playground/api.js, a browser module run here under node):
// events split anywhere across chunks, CRLF, comments, multi-line data; following a job resumes after
// a dropped stream with Last-Event-ID, treats an id-less retriable error as a stream failure, stops
// at the job's terminal event, and gives up on an answer that will not change.
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain browser ES module (no build step, no type declarations)
import { ApiProblem, followJob, readEvents } from "../../public/playground/api.js";

/** A body that hands out `text` in the given chunks. */
function body(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    pull(controller) {
      const next = chunks.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(enc.encode(next));
    },
  });
}

async function events(chunks: string[]) {
  const got: [string, string, string | undefined][] = [];
  await readEvents(body(chunks), (name: string, data: string, id: string | undefined) =>
    got.push([name, data, id]),
  );
  return got;
}

describe("readEvents", () => {
  it("reads events split at every possible place", async () => {
    const text =
      'id: 1\nevent: position\ndata: {"position":2}\n\n: heartbeat\n\nid: 2\nevent: complete\ndata: {}\n\n';
    const expected = [
      ["position", '{"position":2}', "1"],
      ["complete", "{}", "2"],
    ];
    for (let cut = 0; cut <= text.length; cut++) {
      expect(await events([text.slice(0, cut), text.slice(cut)])).toEqual(expected);
    }
    expect(await events([...text])).toEqual(expected);
  });

  it("takes CRLF line ends, joins data lines, names unnamed events message, drops data-less ones", async () => {
    expect(
      await events([
        "event: a\r\ndata: x\r\ndata:y\r\n\r\n",
        "data: plain\n\n",
        "event: empty\n\n",
        "id: 9\n\n",
      ]),
    ).toEqual([
      ["a", "x\ny", undefined],
      ["message", "plain", undefined],
    ]);
  });
});

/** An API whose event streams are the given texts in turn, noting each call's Last-Event-ID. */
function streams(texts: (string | Error)[]) {
  const lastIds: (string | undefined)[] = [];
  const api = {
    events: async (_id: string, lastEventId: string | undefined) => {
      lastIds.push(lastEventId);
      const next = texts.shift();
      if (next === undefined) throw new Error("no more streams");
      if (next instanceof Error) throw next;
      return new Response(body([next]));
    },
  };
  return { api, lastIds };
}

describe("followJob", () => {
  it("resumes after a dropped stream from the last id and ends at the terminal event", async () => {
    const { api, lastIds } = streams([
      'id: 1\nevent: started\ndata: {"attempt":1}\n\nid: 2\nevent: progress\ndata: {"progress":0.5}\n\n',
      // the stream failing inside: an error without id, retriable
      'event: error\ndata: {"code":"unavailable","retriable":true}\n\n',
      'id: 3\nevent: complete\ndata: {"output":"https://x/objects/a"}\n\nid: 4\nevent: ignored\ndata: {}\n\n',
    ]);
    const seen: string[] = [];
    const how = await followJob(api, "j_x", {
      signal: new AbortController().signal,
      onEvent: (name: string) => seen.push(name),
    });
    expect(how).toBe("ended");
    expect(seen).toEqual(["started", "progress", "complete"]);
    expect(lastIds).toEqual([undefined, "2", "2"]);
  });

  it("ends at the job's own error event (it has an id)", async () => {
    const { api } = streams(['id: 5\nevent: error\ndata: {"code":"cancelled","retriable":false}\n\n']);
    const seen: unknown[] = [];
    const how = await followJob(api, "j_x", {
      signal: new AbortController().signal,
      onEvent: (name: string, data: unknown) => seen.push([name, data]),
    });
    expect(how).toBe("ended");
    expect(seen).toEqual([["error", { code: "cancelled", retriable: false }]]);
  });

  it("throws an answer that will not change (404) without asking again", async () => {
    const missing = new ApiProblem("Not Found: job j_x not found (code: not_found)", 404, "not_found");
    const { api, lastIds } = streams([missing]);
    await expect(
      followJob(api, "j_x", { signal: new AbortController().signal, onEvent: () => undefined }),
    ).rejects.toBe(missing);
    expect(lastIds).toHaveLength(1);
  });

  it("stops when aborted", async () => {
    const controller = new AbortController();
    const { api } = streams(['id: 1\nevent: started\ndata: {"attempt":1}\n\n']);
    const how = await followJob(api, "j_x", {
      signal: controller.signal,
      onEvent: () => controller.abort(),
    });
    expect(how).toBe("aborted");
  });
});
