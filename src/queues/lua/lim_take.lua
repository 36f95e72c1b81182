--[[
  The deployment-wide ledger (docs/decisions.md "Pools"; run under REDIS_PREFIX, never with a pool's
  keys): takes a queued place for a job before its pool admits it, refusing when its tenant or
  everyone holds the limit. Idempotent: a place the job holds already is kept (a resent call).

  ARGV[1] prefix  ARGV[2] customer  ARGV[3] job id  ARGV[4] the tenant's queued-at-once limit (-1 = none)
  ARGV[5] everyone's (QUEUE_MAX; -1 = none)  ARGV[6] now (ms)
  Returns { 1 }  the place is the job's
  { E.queue_full, queued }  the tenant holds its limit of places; nothing was stored
  { E.queue_full_all, queued }  everyone's limit; nothing was stored
]]
local cust = ARGV[2]
local entry = "q\t" .. cust .. "\t" .. ARGV[3]
local led = key("lim", "led")
if redis.call("ZSCORE", led, entry) then return {1} end
local counts = key("lim", "n")
local n = redis.call("HMGET", counts, "q:" .. cust, "q")
local mine = tonumber(n[1] or "0")
local all = tonumber(n[2] or "0")
local tenant_max = tonumber(ARGV[4])
local queue_max = tonumber(ARGV[5])
if tenant_max >= 0 and mine >= tenant_max then return {E.queue_full, mine} end
if queue_max >= 0 and all >= queue_max then return {E.queue_full_all, all} end
redis.call("ZADD", led, tonumber(ARGV[6]), entry)
redis.call("HINCRBY", counts, "q:" .. cust, 1)
redis.call("HINCRBY", counts, "q", 1)
return {1}
