--[[
  Ends the PUT that claimed an asset (src/queues/asset-store.ts). Done: the asset names the stored
  digest and is kept for the retention, its uploader may read the object (the grant finish.lua gives
  a job's outputs), and the object is pinned for the CAS collector as long. Given back (no digest):
  the asset is pending again, for another PUT.

  ARGV[1] prefix  ARGV[2] asset id  ARGV[3] claim token  ARGV[4] digest ("" = give the claim back)
  ARGV[5] retention (s)  ARGV[6] pin until (ms)
  Returns 1 settled, 0 the claim is not this PUT's (taken over, or the asset expired): nothing changed
]]
local k = key("asset", ARGV[2])
local f = redis.call("HMGET", k, "state", "claim", "cust")
if f[1] ~= "uploading" or f[2] ~= ARGV[3] then return 0 end
redis.call("HDEL", k, "claim", "claim_until")
if ARGV[4] == "" then
  redis.call("HSET", k, "state", "pending")
  return 1
end
local digest = ARGV[4]
local retention_s = tonumber(ARGV[5])
redis.call("HSET", k, "state", "done", "digest", digest)
redis.call("EXPIRE", k, retention_s)
redis.call("SADD", key("own", digest), f[3])
redis.call("EXPIRE", key("own", digest), retention_s)
redis.call("ZADD", key("cas", "pin"), "GT", ARGV[6], digest)
return 1
