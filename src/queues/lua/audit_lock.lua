--[[
  The audit log's single-writer lock with a fencing token (docs/decisions.md "Audit log: the
  appender"). Taking it (held fence 0) succeeds only when nobody holds it, and draws the next
  fencing token; renewing it (the held fence) succeeds only while the lock is still this holder's;
  releasing it (lock ms 0) deletes it when it is. Every commit checks the token (audit_commit.lua), so
  a holder that lost the lock while it was paused cannot change the log afterwards.

  ARGV[1] prefix  ARGV[2] the holder's id (unique per process)  ARGV[3] lock lifetime (ms; 0 = release)
  ARGV[4] the fencing token held (0 to take the lock)
  Returns the fencing token (> 0) held now, 0 when the lock is another's (or was released)
]]
local lk = key("audit", "lock")
local owner = ARGV[2]
local ms = tonumber(ARGV[3])
local held = ARGV[4]
local current = redis.call("GET", lk)
if held ~= "0" then
  if current ~= held .. ":" .. owner then return 0 end
  if ms == 0 then
    redis.call("DEL", lk)
    return 0
  end
  redis.call("PEXPIRE", lk, ms)
  return tonumber(held)
end
if current or ms == 0 then return 0 end
local fence = redis.call("INCR", key("audit", "fence"))
redis.call("SET", lk, fence .. ":" .. owner, "PX", ms)
return fence
