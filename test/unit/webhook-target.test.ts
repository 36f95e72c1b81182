import { describe, expect, it } from "vitest";
import { isIP, isPrivateAddress, outboundUrlProblem } from "../../src/core/webhook-target.js";

const strict = { allowPrivate: false, allowedPorts: [443] };
const open = { allowPrivate: true, allowedPorts: [443] };
const webhookTargetProblem = (url: string, allowPrivate: boolean) =>
  outboundUrlProblem(url, allowPrivate ? open : strict)?.message;

describe("webhook targets", () => {
  it("recognises IP literals", () => {
    expect(isIP("10.0.0.1")).toBe(4);
    expect(isIP("256.0.0.1")).toBe(0);
    expect(isIP("::1")).toBe(6);
    expect(isIP("2001:db8::1")).toBe(6);
    expect(isIP("example.com")).toBe(0);
  });
  it.each([
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "::1",
    "fe80::1",
    "fd00::1",
    "::ffff:127.0.0.1",
  ])("treats %s as private", (ip) => {
    expect(isPrivateAddress(ip)).toBe(true);
  });
  it.each(["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])("treats %s as public", (ip) => {
    expect(isPrivateAddress(ip)).toBe(false);
  });
  it("accepts public https URLs and refuses the rest", () => {
    expect(webhookTargetProblem("https://hooks.example.com/render", false)).toBeUndefined();
    expect(webhookTargetProblem("http://hooks.example.com/render", false)).toMatch(/https/);
    expect(webhookTargetProblem("https://127.0.0.1/x", false)).toMatch(/private/);
    expect(webhookTargetProblem("https://[::1]/x", false)).toMatch(/private/);
    expect(webhookTargetProblem("https://localhost/x", false)).toMatch(/internal/);
    expect(webhookTargetProblem("https://metadata.google.internal/x", false)).toMatch(/internal/);
    expect(webhookTargetProblem("https://user:pw@example.com/x", false)).toMatch(/credentials/);
    expect(webhookTargetProblem("https://127.0.0.1/x", true)).toBeUndefined();
  });
});
