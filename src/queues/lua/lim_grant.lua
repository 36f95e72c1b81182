--[[
  Applies permits of the deployment-wide running limit (lim_claim.lua gave them) to this pool's held
  jobs: each job still queued, without a permit and with its fence below the permit's number gets it
  (`rperm`, and its fence rises to the number, so no permit applies twice) and goes back to its
  route's dispatch set at its place; the dispatchers are woken. A permit not applied is returned for
  the caller to release.

  ARGV[1] prefix  ARGV[2..] permits "<job id>@<n>"
  Returns the permits not applied
]]
local unused = {}
local woke = nil
for i = 2, #ARGV do
  local m = ARGV[i]
  local id, n = string.match(m, "^(.+)@(%d+)$")
  local f = id and redis.call("HMGET", key("job", id), "status", "cust", "rperm", "rfence", "route", "score")
  if f and f[1] == "queued" and not f[3] and tonumber(f[4] or "0") < tonumber(n) then
    -- the fence rises to the permit's number: a permit applies at most once (a resent call of this
    -- script, after the permit ended with its attempt, finds the job without one again)
    redis.call("HSET", key("job", id), "rperm", m, "rfence", n)
    if redis.call("ZREM", key("q", "held", f[2]), id) == 1 then
      redis.call("HINCRBY", key("t", f[2]), "h", -1)
      route_add(id, f[5], f[6])
      woke = id
    end
  else
    unused[#unused + 1] = m
  end
end
if woke then redis.call("PUBLISH", key("ch", "wake"), woke) end
return unused
