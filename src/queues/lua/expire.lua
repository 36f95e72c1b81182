--[[
  Cancels queued jobs whose time-to-start (ttl) has passed, with error code `ttl_expired`. They were
  never sent to a backend and are never billed. A job that started in time is never expired, also
  when a retry later puts it back in the queue (starting removes its ttl).

  A ttl the client sent is indexed in the ttl set (admit.lua), so any of them is found at once. The
  default ttl of a job sent without one (field ttl_def) is not indexed — that would cost every
  admission and every start a write — and is found by a sweep through the order, 200 jobs per call
  from where the last call stopped (kept in q:sweep), back to the start at the end: under fair share
  the order is not the order of admission, so no prefix of it holds all the oldest jobs. Dispatch
  checks both before it starts a job, so none starts late whatever this sweep has not reached yet.

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

-- Default ttls: 200 jobs looked at per call, from the sweep's rank on.
local from = tonumber(redis.call("GET", key("q", "sweep")) or "0")
local batch = redis.call("ZRANGE", key("q"), from, from + 199)
local kept = 0
for _, id in ipairs(batch) do
  local f = redis.call("HMGET", key("job", id), "ttl_def", "started")
  local ttl_def = tonumber(f[1] or "0")
  if not f[2] and ttl_def > 0 and ttl_def <= now then expire(id) else kept = kept + 1 end
end
if #batch < 200 then from = 0 else from = from + kept end
redis.call("SET", key("q", "sweep"), from)
return n
