--[[
  The reaper's look ahead (docs/decisions.md "Pools"): the expired leases reap.lua will take at `now`
  (the same bound, 200 per backend), of jobs with `lim`, as the ledger entries of the queued places
  their jobs may be put back with — reserved before the reap, released by it when not needed.

  ARGV[1] prefix  ARGV[2] now (ms)
  Returns entries "q\t<customer>\t<attempt id>"
]]
local now = tonumber(ARGV[2])
local out = {}
for _, backend in ipairs(redis.call("SMEMBERS", key("lease", "backends"))) do
  for _, member in ipairs(redis.call("ZRANGEBYSCORE", key("lease", backend), "-inf", now, "LIMIT", 0, 200)) do
    local id = attempt_parts(member)
    local f = redis.call("HMGET", key("job", id), "lim", "cust")
    if f[1] and f[2] then out[#out + 1] = "q\t" .. f[2] .. "\t" .. member end
  end
end
return out
