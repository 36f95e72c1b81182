--[[
  Cancels queued jobs whose time-to-start (ttl) has passed, with error code `ttl_expired`. They were
  never sent to a backend and are never billed. A job that started in time is never expired, also
  when a retry later puts it back in the queue (starting removes its ttl).

  A ttl the client sent is indexed in the ttl set (admit.lua), so any of them is found at once. The
  default ttl of a job sent without one (field ttl_def) is not indexed — that would cost every
  admission and every start a write — and is found by a scan of the oldest jobs of each priority
  class: default ttls grow with admission order, so the scan stops at the first one still ahead (a
  job that started already, back in the queue for a retry, is passed over). Dispatch checks both
  before it starts a job, so none starts late whatever this sweep has not reached yet.

  ARGV[1] prefix  ARGV[2] now (ms)  ARGV[3] retention seconds  ARGV[4] retention count
  Returns the number of jobs cancelled
]]
local now = tonumber(ARGV[2])
local retention_s = tonumber(ARGV[3])
local retention_count = tonumber(ARGV[4])
local n = 0

local function expire(id)
  queue_leave(id)
  terminate(id, "cancelled", now, "ttl_expired", "not started within its ttl", false, retention_s, retention_count)
  n = n + 1
end

local due = redis.call("ZRANGEBYSCORE", key("q", "ttl"), "-inf", now, "LIMIT", 0, 500)
for _, id in ipairs(due) do
  if job_get(id, "status") == "queued" then expire(id) else redis.call("ZREM", key("q", "ttl"), id) end
end

-- Default ttls: at most 100 jobs looked at per class and call.
for class = 0, 2 do
  local oldest = redis.call("ZRANGEBYSCORE", key("q"), order_key(class, 0), "(" .. order_key(class + 1, 0),
    "LIMIT", 0, 100)
  for _, id in ipairs(oldest) do
    local f = redis.call("HMGET", key("job", id), "ttl_def", "started")
    local ttl_def = tonumber(f[1] or "0")
    if not f[2] and ttl_def > 0 then
      if ttl_def > now then break end
      expire(id)
    end
  end
end
return n
