// The text of a request body as its chunks arrive: multi-byte characters split between chunks stay
// whole, a leading byte order mark is dropped (RFC 8259 §8.1 lets a parser ignore it; the web
// Request.text() the reader replaced did), and what it holds stays about the size of the text
// however small the chunks are (an HTTP/1.1 chunked body can arrive as millions of 1-byte chunks).
import { describe, expect, it } from "vitest";
import { BodyText } from "../../src/api/body.js";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** `bytes` pushed in chunks of `size`, and the text it ends with. */
function read(bytes: Uint8Array, size: number): { text: string; pieces: number } {
  const body = new BodyText();
  for (let i = 0; i < bytes.length; i += size) body.push(bytes.subarray(i, i + size));
  const pieces = body.pieces;
  return { text: body.end(), pieces };
}

describe("BodyText", () => {
  const sample = '{"prompt":"phare à l\'aube, 灯台 🦊","lora":[]}';

  it.each([1, 2, 3, 7, 1024])("reads %i-byte chunks as the whole, characters split between them", (size) => {
    expect(read(utf8(sample), size).text).toBe(sample);
  });

  it.each([1, 2, 1000])(
    "keeps a character cut where 64 KiB of small chunks are decoded (%i-byte chunks)",
    (size) => {
      for (const pad of [65535, 65534, 65533, 131070]) {
        const text = "x".repeat(pad) + "灯台🦊" + "y".repeat(70_000) + "é";
        expect(read(utf8(text), size).text).toBe(text);
      }
    },
  );

  it("reads one chunk, and none", () => {
    expect(read(utf8(sample), 1 << 20).text).toBe(sample);
    expect(new BodyText().end()).toBe("");
  });

  it.each([1, 2, 4, 1 << 20])("drops a leading byte order mark (%i-byte chunks)", (size) => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...utf8(sample)]);
    expect(read(bytes, size).text).toBe(sample);
    expect(read(new Uint8Array([0xef, 0xbb, 0xbf]), size).text).toBe("");
  });

  it("keeps a byte order mark that is not at the start (JSON.parse refuses it there)", () => {
    expect(read(utf8(" \ufeff{}"), 1).text).toBe(" \ufeff{}");
  });

  it("holds a few pieces of text, not one per chunk, for a body of 1-byte chunks", () => {
    const bytes = utf8(" ".repeat(1 << 20) + sample);
    const { text, pieces } = read(bytes, 1);
    expect(text.length).toBe((1 << 20) + sample.length);
    expect(pieces).toBeLessThan(64);
  });
});
