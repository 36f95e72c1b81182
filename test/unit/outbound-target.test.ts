// SSRF guards of webhook and image URLs: IPv6 in every spelling the URL parser produces, IPv4 embedded
// in IPv6 transition prefixes, numeric IPv4 forms, and fully qualified (trailing-dot) internal names.
import { describe, expect, it } from "vitest";
import {
  hostProblem,
  isIP,
  isPrivateAddress,
  outboundUrlProblem,
  type OutboundPolicy,
} from "../../src/core/webhook-target.js";

const strict: OutboundPolicy = { allowPrivate: false, allowedPorts: [443] };
const open: OutboundPolicy = { allowPrivate: true, allowedPorts: [80, 443] };
/** The submit-time check's message for a URL, or undefined when it is acceptable. */
const webhookTargetProblem = (url: string, allowPrivate: boolean) =>
  outboundUrlProblem(url, allowPrivate ? open : strict)?.message;
const imageUrlProblem = webhookTargetProblem;

describe("IP literals", () => {
  it("tells the literal kinds apart", () => {
    expect(isIP("10.0.0.1")).toBe(4);
    expect(isIP("::ffff:7f00:1")).toBe(6);
    expect(isIP("::ffff:127.0.0.1")).toBe(6);
    expect(isIP("256.0.0.1")).toBe(0);
    expect(isIP("0x7f.1")).toBe(0); // only the URL parser's normalised dotted quad counts
    expect(isIP("example.com")).toBe(0);
    expect(isIP("1:2:3:4:5:6:7:8:9")).toBe(0);
  });
  it("counts anything that is not an address as private", () => {
    expect(isPrivateAddress("example.com")).toBe(true);
    expect(isPrivateAddress("")).toBe(true);
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
    // the rest of the IETF special ranges
    "2001:1::1",
    "2001:db8::1",
    "100::1",
    "64:ff9b:1::1",
    "::ffff:0:7f00:1",
    "fe80::1%eth0",
    "[::1]",
    // IPv4 in every special range
    "0.0.0.0",
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "100.100.100.200",
    "192.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
  ])("%s is private", (ip) => {
    expect(isPrivateAddress(ip)).toBe(true);
  });
  it.each([
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "::ffff:808:808",
    "::808:808",
    "64:ff9b::808:808",
    "2002:808:808::",
    "fbff::1",
    "fe7f::1",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.1",
    "::ffff:0:808:808",
    "172.32.0.1",
    "[2606:4700:4700::1111]",
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
    "https://redis.default.svc/hook",
    "https://redis.default.svc.cluster.local/hook",
    "https://router.home.arpa/hook",
    "https://metadata/computeMetadata/v1/",
  ])("refuses the internal name in %s", (url) => {
    expect(webhookTargetProblem(url, false)).toMatch(/internal host name/);
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
    expect(imageUrlProblem(url, false)).toMatch(/private|internal/);
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

describe("host names and addresses at connect time", () => {
  it.each([
    ["127.0.0.1", "a private or loopback address"],
    ["[::1]", "a private or loopback address"],
    ["::ffff:a9fe:a9fe", "a private or loopback address"],
    ["localhost", "an internal host name"],
    ["kubernetes.default.svc", "an internal host name"],
    ["db", "an internal host name"],
    ["images.example.com", undefined],
    ["93.184.215.14", undefined],
  ])("judges %s", (host, problem) => {
    expect(hostProblem(host)).toBe(problem);
  });
});

describe("ports and schemes", () => {
  it("allows only the listed ports, the scheme's default counting as named", () => {
    expect(outboundUrlProblem("https://images.example.com/a.png", strict)).toBeUndefined();
    expect(outboundUrlProblem("https://images.example.com:443/a.png", strict)).toBeUndefined();
    for (const url of [
      "https://images.example.com:8443/a.png",
      "https://images.example.com:6379/a.png",
      "https://images.example.com:22/a.png",
      "https://8.8.8.8:80/a.png",
    ]) {
      expect(outboundUrlProblem(url, strict)?.reason).toBe("port");
    }
    const wide = { allowPrivate: false, allowedPorts: [443, 8443] };
    expect(outboundUrlProblem("https://images.example.com:8443/a.png", wide)).toBeUndefined();
  });
  it("keeps the port limit when private targets are allowed, and takes http there only", () => {
    const privateTls = { allowPrivate: true, allowedPorts: [443] };
    expect(outboundUrlProblem("http://127.0.0.1/a.png", privateTls)?.reason).toBe("port");
    const dev = { allowPrivate: true, allowedPorts: [80, 8080] };
    expect(outboundUrlProblem("http://127.0.0.1/a.png", dev)).toBeUndefined();
    expect(outboundUrlProblem("http://localhost:8080/a.png", dev)).toBeUndefined();
    expect(outboundUrlProblem("http://images.example.com/a.png", strict)?.reason).toBe("scheme");
    expect(outboundUrlProblem("ftp://images.example.com/a.png", dev)?.reason).toBe("scheme");
  });
  it("names no port it was not given and no resolved address in its messages", () => {
    expect(outboundUrlProblem("https://10.0.0.8/a.png", strict)?.message).not.toContain("10.0.0.8");
  });
});
