// SSRF guards of webhook and image URLs: IPv6 in every spelling the URL parser produces, IPv4 embedded
// in IPv6 transition prefixes, numeric IPv4 forms, and fully qualified (trailing-dot) internal names.
import { describe, expect, it } from "vitest";
import {
  imageUrlProblem,
  isIP,
  isPrivateAddress,
  parseIPv6,
  webhookTargetProblem,
} from "../../src/core/webhook-target.js";

describe("IPv6 parsing", () => {
  it.each([
    ["::", [0, 0, 0, 0, 0, 0, 0, 0]],
    ["::1", [0, 0, 0, 0, 0, 0, 0, 1]],
    ["1::", [1, 0, 0, 0, 0, 0, 0, 0]],
    ["1::8", [1, 0, 0, 0, 0, 0, 0, 8]],
    ["2001:db8:0:0:1:0:0:1", [0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]],
    ["::ffff:7f00:1", [0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]],
    ["::ffff:127.0.0.1", [0, 0, 0, 0, 0, 0xffff, 0x7f00, 1]],
    ["64:ff9b::169.254.169.254", [0x64, 0xff9b, 0, 0, 0, 0, 0xa9fe, 0xa9fe]],
    ["1:2:3:4:5:6:1.2.3.4", [1, 2, 3, 4, 5, 6, 0x102, 0x304]],
    ["::1:2:3:4:5:6:7", [0, 1, 2, 3, 4, 5, 6, 7]],
    ["FEC0::1", [0xfec0, 0, 0, 0, 0, 0, 0, 1]],
  ])("expands %s", (text, groups) => {
    expect(parseIPv6(text)).toEqual(groups);
  });
  it.each([
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    ":::",
    "1::2::3",
    "12345::",
    ":1::",
    "1:",
    "::ffff:1.2.3",
    "::ffff:1.2.3.256",
    "fe80::1%eth0",
    "1:2:3:4:5:6:7::8",
    "example.com",
    "1.2.3.4",
    "",
  ])("refuses %j", (text) => {
    expect(parseIPv6(text)).toBeUndefined();
  });
  it("tells the literal kinds apart", () => {
    expect(isIP("10.0.0.1")).toBe(4);
    expect(isIP("::ffff:7f00:1")).toBe(6);
    expect(isIP("256.0.0.1")).toBe(0);
    expect(isIP("example.com")).toBe(0);
  });
});

describe("private addresses", () => {
  it.each([
    "::",
    "::1",
    "fc00::1",
    "fd00:ec2::254",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "feff::1",
    "ff02::1",
    "::ffff:7f00:1",
    "::ffff:127.0.0.1",
    "::ffff:a9fe:a9fe",
    "::ffff:10.0.0.1",
    "::7f00:1",
    "::127.0.0.1",
    "::a00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::7f00:1",
    "64:ff9b::192.168.0.1",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::",
    // Teredo (2001::/32): a tunnel whose relays reach whatever IPv4 the address embeds
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001::1",
  ])("%s is private", (ip) => {
    expect(isPrivateAddress(ip)).toBe(true);
  });
  it.each([
    "2001:4860:4860::8888",
    "2001:1::1",
    "2606:4700:4700::1111",
    "::ffff:808:808",
    "::808:808",
    "64:ff9b::808:808",
    "2002:808:808::",
    "fbff::1",
    "fe7f::1",
    "8.8.8.8",
  ])("%s is public", (ip) => {
    expect(isPrivateAddress(ip)).toBe(false);
  });
});

describe("webhook targets", () => {
  it.each([
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:169.254.169.254]/latest/meta-data",
    "https://[::127.0.0.1]/hook",
    "https://[64:ff9b::a9fe:a9fe]/hook",
    "https://[64:ff9b::169.254.169.254]/hook",
    "https://[2002:7f00:1::]/hook",
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",
    "https://[fec0::1]/hook",
    "https://[::]/hook",
    "https://[::1]/hook",
    "https://[0:0:0:0:0:ffff:7f00:1]/hook",
  ])("refuses the IPv6 literal in %s", (url) => {
    expect(webhookTargetProblem(url, false)).toMatch(/private or loopback/);
  });
  it.each([
    ["https://2130706433/hook", "127.0.0.1"],
    ["https://0x7f000001/hook", "127.0.0.1"],
    ["https://0x7f.1/hook", "127.0.0.1"],
    ["https://017700000001/hook", "127.0.0.1"],
    ["https://0177.0.0.1/hook", "127.0.0.1"],
    ["https://127.1/hook", "127.0.0.1"],
    ["https://2852039166/latest", "169.254.169.254"],
    ["https://127.0.0.1./hook", "127.0.0.1"],
  ])("refuses %s (the URL parser reads it as %s)", (url, normalised) => {
    expect(new URL(url).hostname).toBe(normalised);
    expect(webhookTargetProblem(url, false)).toMatch(/private or loopback/);
  });
  it.each([
    "https://localhost./hook",
    "https://LOCALHOST/hook",
    "https://metadata.google.internal./computeMetadata/v1/",
    "https://metadata./hook",
    "https://api.localhost./hook",
    "https://printer.local./hook",
    "https://intranet/hook",
    "https://intranet./hook",
  ])("refuses the internal name in %s", (url) => {
    expect(webhookTargetProblem(url, false)).toMatch(/not a public host name/);
  });
  it.each([
    "https://hooks.example.com/render",
    "https://hooks.example.com./render",
    "https://[2001:4860:4860::8888]/hook",
    "https://8.8.8.8/hook",
    "https://134744072/hook",
  ])("accepts %s", (url) => {
    expect(webhookTargetProblem(url, false)).toBeUndefined();
  });
  it("allows private targets (and plain http) only with WEBHOOK_ALLOW_PRIVATE", () => {
    expect(webhookTargetProblem("https://[::ffff:127.0.0.1]/hook", true)).toBeUndefined();
    expect(webhookTargetProblem("http://localhost./hook", true)).toBeUndefined();
    expect(webhookTargetProblem("http://hooks.example.com/hook", false)).toMatch(/https/);
  });
});

describe("image URLs", () => {
  it.each([
    "https://127.0.0.1/a.png",
    "https://[::ffff:169.254.169.254]/a.png",
    "https://2130706433/a.png",
    "https://localhost./a.png",
    "https://metadata.google.internal./a.png",
    "https://10.1.2.3/a.png",
  ])("refuses %s", (url) => {
    expect(imageUrlProblem(url, false)).toMatch(/private|public/);
  });
  it("accepts public hosts, and private ones with WEBHOOK_ALLOW_PRIVATE", () => {
    expect(imageUrlProblem("https://example.com/portrait.jpg", false)).toBeUndefined();
    expect(imageUrlProblem("https://cdn.render.weyl.ai/a/xyz123", false)).toBeUndefined();
    expect(imageUrlProblem("https://127.0.0.1/a.png", true)).toBeUndefined();
  });
  it("refuses credentials in the URL", () => {
    expect(imageUrlProblem("https://user:pw@example.com/a.png", false)).toMatch(/credentials/);
  });
});
