--[[
  Cancels queued jobs whose time-to-start (ttl) has passed, with error code `ttl_expired`. They were
  never sent to a backend and are never billed. A job that started in time is never expired, also
  when a retry later puts it back in the queue (starting removes its ttl).

  ARGV[1] prefix  ARGV[2] now (ms)  ARGV[3] retention seconds  ARGV[4] retention count
  Returns the number of jobs cancelled
]]
local now = tonumber(ARGV[2])
local n = 0
local due = redis.call("ZRANGEBYSCORE", key("q", "ttl"), "-inf", now, "LIMIT", 0, 500)
for _, id in ipairs(due) do
  local status = job_get(id, "status")
  if status == "queued" then
    unqueue(id)
    terminate(id, "cancelled", now, "ttl_expired", "not started within its ttl", false, tonumber(ARGV[3]),
      tonumber(ARGV[4]))
    n = n + 1
  else
    redis.call("ZREM", key("q", "ttl"), id)
  end
end
return n
