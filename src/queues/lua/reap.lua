--[[
  Reclaims expired leases (their holder died or lost Redis for longer than the lease ttl) and puts
  the affected jobs back in the queue at their place. A job that was running counts the lost attempt
  as spent ("lost"); when its attempts are exhausted it ends in error. A lease whose job moved on
  (finished, cancelled, re-dispatched) is simply dropped.

  ARGV[1] prefix  ARGV[2] now (ms)  ARGV[3] max attempts  ARGV[4] retention seconds
  ARGV[5] retention count
  Returns the number of jobs put back in the queue
]]
local now = tonumber(ARGV[2])
local max_attempts = tonumber(ARGV[3])
local retention_s = tonumber(ARGV[4])
local retention_count = tonumber(ARGV[5])
local requeued = 0

for _, backend in ipairs(redis.call("SMEMBERS", key("lease", "backends"))) do
  local lk = key("lease", backend)
  local expired = redis.call("ZRANGEBYSCORE", lk, "-inf", now, "LIMIT", 0, 200)
  for _, member in ipairs(expired) do
    running_leave(backend, member)
    local id, token = attempt_parts(member)
    local jk = key("job", id)
    local f = redis.call("HMGET", jk, "status", "token", "alog", "lim", "cust", "rperm")
    local back = false
    if f[2] == token then
      -- the attempt's permit of the deployment-wide running limit ends with it
      if f[6] then
        redis.call("HDEL", jk, "rperm")
        lim_gone("r", f[5], f[6])
      end
      if f[1] == "running" then
        alog_close(id, f[3], now, "lost", {})
        local spent = redis.call("HINCRBY", jk, "spent", 1)
        if spent >= max_attempts then
          terminate(id, "error", now, "worker_lost", "the worker running the job stopped answering (after " ..
            spent .. " attempts)", true, retention_s, retention_count, {"token", "notbefore"})
        else
          requeue(id, 0, now, member)
          back = true
          requeued = requeued + 1
        end
      elseif f[1] == "cancelled" then
        -- the job ended at the cancel; its attempt ends now, unmetered (its worker never settled it)
        end_job(id, nil, now, {drop = {"token"}})
      end
    end
    -- the queued place the reaper reserved for it (pool-limits.ts reserveLapsed) is not needed
    if f[4] and not back then lim_gone("q", f[5], member) end
  end
  if redis.call("ZCARD", lk) == 0 then redis.call("SREM", key("lease", "backends"), backend) end
end
return requeued
