--[[
  Releases the CAS collector's lock (cas:gc:lock) if this caller still holds it: a lock that expired
  and was taken by another process is left to that process.

  ARGV[1] prefix  ARGV[2] the holder's token
  Returns 1 released, 0 not held by this token
]]
local lk = key("cas", "gc", "lock")
if redis.call("GET", lk) == ARGV[2] then
  redis.call("DEL", lk)
  return 1
end
return 0
