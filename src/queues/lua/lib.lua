--[[
  Shared helpers, prepended to every scheduler script at load time. Every script passes the key
  prefix as ARGV[1]; keys derived from job ids are built here (all keys share the prefix's hash tag).
  Job hash fields used here: status token score route backend alog spent evseq ttl_at avoid started.
]]
local P = ARGV[1]
local function key(...)
  return P .. ":" .. table.concat({...}, ":")
end

local function job_get(id, field)
  return redis.call("HGET", key("job", id), field)
end

-- Appends an event to the job's stream with the next integer id (0-<seq>) and wakes listeners.
local function record_event(id, name, data)
  local seq = redis.call("HINCRBY", key("job", id), "evseq", 1)
  redis.call("XADD", key("ev", id), "0-" .. seq, "e", name, "d", data)
  return seq
end

local function add_event(id, name, data)
  local seq = record_event(id, name, data)
  redis.call("PUBLISH", key("ch", "ev"), id)
  return seq
end

local function json_array(t)
  if #t == 0 then return "[]" end
  return cjson.encode(t)
end

-- Closes the open attempt of the attempt log with an outcome (and optional extra members).
local function alog_close(id, now, outcome, extra)
  local raw = job_get(id, "alog")
  if not raw then return end
  local log = cjson.decode(raw)
  local last = log[#log]
  if last and last["ended_at"] == nil then
    last["ended_at"] = now
    last["outcome"] = outcome
    if extra then
      for k, v in pairs(extra) do last[k] = v end
    end
    redis.call("HSET", key("job", id), "alog", json_array(log))
  end
end

local function route_remove(id, route)
  local rk = key("q", "r", route)
  redis.call("ZREM", rk, id)
  if redis.call("ZCARD", rk) == 0 then
    redis.call("SREM", key("q", "routes"), route)
  end
end

-- Removes a job from every queue structure (global order, route set, backoff set, ttl set).
local function unqueue(id)
  redis.call("ZREM", key("q"), id)
  local route = job_get(id, "route")
  if route then route_remove(id, route) end
  redis.call("ZREM", key("q", "later"), id)
  redis.call("ZREM", key("q", "ttl"), id)
end

-- Puts a job back in the queue at its original score (it keeps its place in the order).
-- With notbefore > now it waits in the backoff set first and is not dispatchable until then.
local function requeue(id, notbefore, now)
  local jk = key("job", id)
  local score = redis.call("HGET", jk, "score")
  local route = redis.call("HGET", jk, "route")
  redis.call("HSET", jk, "status", "queued")
  redis.call("HDEL", jk, "token")
  redis.call("ZADD", key("q"), score, id)
  if notbefore and notbefore > now then
    redis.call("HSET", jk, "notbefore", notbefore)
    redis.call("ZADD", key("q", "later"), notbefore, id)
  else
    redis.call("HDEL", jk, "notbefore")
    redis.call("ZADD", key("q", "r", route), score, id)
    redis.call("SADD", key("q", "routes"), route)
  end
  redis.call("PUBLISH", key("ch", "wake"), id)
end

-- A terminal job is kept for retention_s seconds and among the newest retention_count terminal jobs.
local function retire(id, now, retention_s, retention_count)
  redis.call("ZREM", key("q", "ttl"), id)
  redis.call("EXPIRE", key("job", id), retention_s)
  redis.call("EXPIRE", key("ev", id), retention_s)
  local done = key("done")
  redis.call("ZADD", done, now, id)
  local excess = redis.call("ZCARD", done) - retention_count
  if excess > 0 then
    local old = redis.call("ZPOPMIN", done, math.min(excess, 50))
    for i = 1, #old, 2 do
      redis.call("DEL", key("job", old[i]), key("ev", old[i]))
    end
  end
end

-- Ends a job in a terminal state with an error object (error, or cancelled with a reason code).
local function terminate(id, status, now, code, message, retriable, retention_s, retention_count)
  local jk = key("job", id)
  local err = cjson.encode({code = code, message = message, retriable = retriable})
  redis.call("HSET", jk, "status", status, "completed", now, "err", err)
  redis.call("HDEL", jk, "notbefore")
  add_event(id, "error", err)
  retire(id, now, retention_s, retention_count)
end
