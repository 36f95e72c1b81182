--[[
  Tells the CAS collector which objects are still referenced: by a queued or running job (a live
  count in cas:live, see lib.lua release_objects), by a pin whose time has not passed (cas:pin:
  finished jobs until their retention ends, and whatever else pinned them), or by the audit log (its
  segment blobs, audit:blobs: kept for good; audit_commit.lua swaps a partial blob for the next). Pins older than the
  cutoff are dropped on the way, a bounded number per call, so the set only holds current pins.

  ARGV[1] prefix  ARGV[2] cutoff (ms): a pin protects an object while its time is at or after this
  ARGV[3] most expired pins to drop in this call  ARGV[4..] digests (at most a few thousand)
  Returns one 1 (referenced) or 0 (not referenced) per digest, in order
]]
local cutoff = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local digests = {}
for i = 4, #ARGV do digests[#digests + 1] = ARGV[i] end
local out = {}
if #digests > 0 then
  local counts = redis.call("HMGET", key("cas", "live"), unpack(digests))
  local pins = redis.call("ZMSCORE", key("cas", "pin"), unpack(digests))
  local logged = redis.call("SMISMEMBER", key("audit", "blobs"), unpack(digests))
  for i = 1, #digests do
    local live = tonumber(counts[i] or "0") or 0
    local pinned = pins[i] and tonumber(pins[i]) >= cutoff
    out[i] = (live > 0 or pinned or logged[i] == 1) and 1 or 0
  end
end
if limit > 0 then
  local expired = redis.call("ZRANGEBYSCORE", key("cas", "pin"), "-inf", "(" .. cutoff, "LIMIT", 0, limit)
  if #expired > 0 then redis.call("ZREM", key("cas", "pin"), unpack(expired)) end
end
return out
