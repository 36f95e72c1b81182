--[[
  The deployment-wide ledger: running permits for a tenant's held jobs of one pool, as many as its
  deployment-wide running-at-once limit leaves (docs/decisions.md "Pools"). A permit's member is
  "<job id>@<n>", n from a counter of the ledger: the pool applies it (lim_grant.lua) only while the
  job's fence is below n, so a permit the sweeper released can never be applied late.

  ARGV[1] prefix  ARGV[2] customer  ARGV[3] limit  ARGV[4] now (ms)  ARGV[5..] job ids (held, in order)
  Returns the permits' members, one per job served (the first ones)
]]
local cust = ARGV[2]
local limit = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local led = key("lim", "led")
local field = "r:" .. cust
local have = tonumber(redis.call("HGET", key("lim", "n"), field) or "0")
local out = {}
for i = 5, #ARGV do
  if have >= limit then break end
  local member = ARGV[i] .. "@" .. redis.call("INCR", key("lim", "seq"))
  redis.call("ZADD", led, now, "r\t" .. cust .. "\t" .. member)
  have = have + 1
  out[#out + 1] = member
end
if #out > 0 then redis.call("HINCRBY", key("lim", "n"), field, #out) end
return out
