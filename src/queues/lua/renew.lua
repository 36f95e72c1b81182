--[[
  Renews the leases of the attempts a worker is running, and tells it which of them are no longer
  its own (cancelled, reaped after a lease expiry, superseded), so it aborts those backend calls.
  This doubles as the fallback of the cancel channel: a missed message costs one renewal period.

  ARGV[1] prefix  ARGV[2] now (ms)  ARGV[3] lease ttl (ms)
  ARGV[4..] triples: job id, token, backend id
  Returns the job ids whose attempt must stop
]]
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local lost = {}
for i = 4, #ARGV, 3 do
  local id, token, backend = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local member = attempt_id(id, token)
  local lk = key("lease", backend)
  local f = redis.call("HMGET", key("job", id), "status", "token")
  if f[1] == "running" and f[2] == token and redis.call("ZSCORE", lk, member) then
    -- Removed and added again rather than ZADD XX alone: with Redis at its maxmemory (noeviction) a
    -- script's first write may not be one that can grow memory (ZADD), but once it has written
    -- (ZREM may not be refused) the rest runs. So renewals go on at the limit, as settling
    -- (finish.lua) and reaping (reap.lua, both deleting first) do; were they refused, every attempt
    -- running longer than the lease would be reaped and run again while Redis is full. The attempt
    -- keeps its slot throughout (not a change of membership: lib.lua running_join/running_leave).
    redis.call("ZREM", lk, member)
    redis.call("ZADD", lk, now + ttl, member)
  else
    lost[#lost + 1] = id
  end
end
return lost
