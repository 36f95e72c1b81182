--[[
  Claims an uploaded asset for one PUT (src/queues/asset-store.ts): one PUT of an asset streams at a
  time, and none once it is done. The claim of a PUT whose process died lapses at its time
  (claim_until) and may then be taken over.

  ARGV[1] prefix  ARGV[2] asset id  ARGV[3] claim token  ARGV[4] now (ms)  ARGV[5] claim lifetime (ms)
  Returns 1 claimed, 0 no such asset (never created, or expired), 2 another PUT holds it, 3 uploaded
  already
]]
local k = key("asset", ARGV[2])
local f = redis.call("HMGET", k, "state", "claim_until")
if not f[1] then return 0 end
if f[1] == "done" then return 3 end
local now = tonumber(ARGV[4])
if f[1] == "uploading" and (tonumber(f[2] or "0") or 0) > now then return 2 end
redis.call("HSET", k, "state", "uploading", "claim", ARGV[3], "claim_until", now + tonumber(ARGV[5]))
return 1
