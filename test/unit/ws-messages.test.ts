// The WebSocket's client messages: JSON bounded like an HTTP body, one object with a known type, each
// member checked; a generate message becomes the POST /queue body.
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/core/errors.js";
import { parseJsonMessage, readClientMessage } from "../../src/api/ws/messages.js";

const bytes = (text: string) => new TextEncoder().encode(text);

/** The error `fn` throws, as `{code, field, constraint}`. */
function refusal(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    return { code: err.code, field: err.details?.["field"], constraint: err.details?.["constraint"] };
  }
  throw new Error("expected a refusal");
}

describe("parseJsonMessage", () => {
  it("takes one JSON object", () => {
    expect(parseJsonMessage(bytes('{"type":"ping","id":"1"}'))).toEqual({ type: "ping", id: "1" });
  });

  it("refuses what is not a JSON object", () => {
    for (const text of ["{not json", "", "[1,2]", '"ping"', "null"]) {
      expect(refusal(() => parseJsonMessage(bytes(text))).code).toBe("invalid_json");
    }
  });

  it("bounds the structure before parsing, as for an HTTP body", () => {
    expect(refusal(() => parseJsonMessage(bytes("[".repeat(100))))).toMatchObject({
      code: "validation_error",
      constraint: "max_depth",
    });
  });
});

describe("readClientMessage", () => {
  const generate = {
    type: "generate",
    id: "client_req_1",
    modality: "video",
    family: "wan",
    model: "default",
    task: "i2v",
    request: { prompt: "she turns", image: "https://example.com/a.png" },
  };

  it("turns the original spec's generate message into the POST /queue body", () => {
    expect(readClientMessage(generate)).toEqual({
      type: "generate",
      id: "client_req_1",
      body: {
        prompt: "she turns",
        image: "https://example.com/a.png",
        modality: "video",
        family: "wan",
        model: "default",
        task: "i2v",
      },
    });
  });

  it("takes routing inside request when it agrees, and refuses it when it does not", () => {
    const { modality: _m, ...withoutModality } = generate;
    const inside = { ...withoutModality, request: { ...generate.request, modality: "video" } };
    expect(readClientMessage(inside)).toMatchObject({ body: { modality: "video" } });
    const contradicting = { ...generate, request: { ...generate.request, modality: "image" } };
    expect(refusal(() => readClientMessage(contradicting))).toMatchObject({
      field: "request.modality",
      constraint: "conflict",
    });
  });

  it("names what is wrong", () => {
    expect(refusal(() => readClientMessage({ id: "x" }))).toMatchObject({
      field: "type",
      constraint: "enum",
    });
    expect(refusal(() => readClientMessage({ type: "GENERATE" }))).toMatchObject({ field: "type" });
    expect(refusal(() => readClientMessage({ ...generate, id: undefined }))).toMatchObject({
      field: "id",
      constraint: "required",
    });
    expect(refusal(() => readClientMessage({ ...generate, id: "x".repeat(129) }))).toMatchObject({
      field: "id",
    });
    expect(refusal(() => readClientMessage({ ...generate, id: 7 }))).toMatchObject({ field: "id" });
    expect(refusal(() => readClientMessage({ ...generate, request: [] }))).toMatchObject({
      field: "request",
      constraint: "type",
    });
    expect(refusal(() => readClientMessage({ ...generate, priority: "high" }))).toMatchObject({
      field: "priority",
      constraint: "unknown",
    });
    expect(refusal(() => readClientMessage({ ...generate, family: "x".repeat(129) }))).toMatchObject({
      field: "family",
    });
    expect(refusal(() => readClientMessage({ type: "auth" }))).toMatchObject({
      field: "token",
      constraint: "required",
    });
    expect(refusal(() => readClientMessage({ type: "auth", token: "t".repeat(8193) }))).toMatchObject({
      field: "token",
      constraint: "max_length",
    });
    expect(refusal(() => readClientMessage({ type: "cancel", job_id: 5 }))).toMatchObject({
      field: "job_id",
    });
  });

  it("reads auth, cancel, subscribe and ping", () => {
    expect(readClientMessage({ type: "auth", token: "abc" })).toEqual({ type: "auth", token: "abc" });
    expect(readClientMessage({ type: "cancel", job_id: "j_1", id: "c" })).toEqual({
      type: "cancel",
      jobId: "j_1",
      id: "c",
    });
    expect(readClientMessage({ type: "subscribe", job_id: "j_1" })).toEqual({
      type: "subscribe",
      jobId: "j_1",
    });
    expect(readClientMessage({ type: "ping" })).toEqual({ type: "ping" });
  });
});
