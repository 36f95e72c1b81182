--[[
  Dispatches the next jobs: for as many free worker slots as the caller has (minus jobs already
  dispatched and not yet begun anywhere), takes the job with the lowest order key among the routes
  that some available backend serves, leases a slot on the least-loaded such backend, and marks the
  job dispatched. The lease (a member "<job id>|<token>" of the backend's lease set, scored by its
  expiry) is what lets a worker call the backend; it expires unless renewed.

  Before dispatching it moves jobs whose retry backoff is over back into their route sets.
  A job whose time-to-start (ttl) passed is cancelled with `ttl_expired` instead of dispatched.

  ARGV[1] prefix  ARGV[2] now (ms)  ARGV[3] free worker slots of the caller
  ARGV[4] backends: JSON array of {id, cap, engine, models (array, "*" = all), ok (bool)}
  ARGV[5] lease ttl (ms)  ARGV[6] token base (unique per call)
  ARGV[7] retention seconds  ARGV[8] retention count
  ARGV[9] preferred engine per "family/model" (JSON object; the catalogue's default backend)
  Returns a flat array: job id, token, backend id, route, ... for each dispatched job
]]
local now = tonumber(ARGV[2])
local free_slots = tonumber(ARGV[3])
local backends = cjson.decode(ARGV[4])
local lease_ttl = tonumber(ARGV[5])
local token_base = ARGV[6]
local retention_s = tonumber(ARGV[7])
local retention_count = tonumber(ARGV[8])
local prefer = cjson.decode(ARGV[9] or "{}")

-- 1. Jobs whose backoff is over become dispatchable again (they never left the global order).
local due = redis.call("ZRANGEBYSCORE", key("q", "later"), "-inf", now, "LIMIT", 0, 200)
for _, id in ipairs(due) do
  redis.call("ZREM", key("q", "later"), id)
  local jk = key("job", id)
  if redis.call("HGET", jk, "status") == "queued" then
    local route = redis.call("HGET", jk, "route")
    redis.call("HDEL", jk, "notbefore")
    redis.call("ZADD", key("q", "r", route), redis.call("HGET", jk, "score"), id)
    redis.call("SADD", key("q", "routes"), route)
  end
end

local allowed = free_slots - tonumber(redis.call("GET", key("dispatched")) or "0")
if allowed <= 0 then return {} end

-- 2. Free slots per backend: capacity minus live leases; none while unhealthy or cooling down.
local free = {}
for _, b in ipairs(backends) do
  local f = 0
  if b.ok and tonumber(redis.call("HGET", key("cool"), b.id) or "0") <= now then
    f = b.cap - redis.call("ZCARD", key("lease", b.id))
  end
  free[b.id] = f
end

local function serves(b, family_model, constraint)
  if constraint ~= "" and constraint ~= b.engine and constraint ~= b.id then return false end
  for _, m in ipairs(b.models) do
    if m == "*" or m == family_model then return true end
  end
  return false
end

local routes = redis.call("SMEMBERS", key("q", "routes"))
local candidates = {}
for _, route in ipairs(routes) do
  local family_model, constraint = string.match(route, "^([^@]+)@?(.*)$")
  local list = {}
  for _, b in ipairs(backends) do
    if serves(b, family_model, constraint) then list[#list + 1] = b end
  end
  candidates[route] = list
end

local function any_free(list)
  for _, b in ipairs(list) do
    if free[b.id] > 0 then return true end
  end
  return false
end

-- Among backends with a free slot: the one to avoid (it just failed this job) last, then the model's
-- preferred engine first, then the least loaded (share of capacity in use), configuration order on ties.
local function choose(list, avoid, engine)
  local best, best_rank = nil, nil
  for _, b in ipairs(list) do
    if free[b.id] > 0 then
      local rank = (b.cap - free[b.id]) / b.cap
      if b.engine ~= engine then rank = rank + 2 end
      if b.id == avoid then rank = rank + 4 end
      if best == nil or rank < best_rank then
        best, best_rank = b, rank
      end
    end
  end
  return best
end

local out = {}
local n = 0
while allowed > 0 do
  local best_route, best_id, best_score = nil, nil, nil
  for _, route in ipairs(routes) do
    if candidates[route] and any_free(candidates[route]) then
      local head = redis.call("ZRANGE", key("q", "r", route), 0, 0, "WITHSCORES")
      if #head == 0 then
        redis.call("SREM", key("q", "routes"), route)
        candidates[route] = nil
      elseif best_score == nil or tonumber(head[2]) < best_score then
        best_route, best_id, best_score = route, head[1], tonumber(head[2])
      end
    end
  end
  if best_id == nil then break end

  local jk = key("job", best_id)
  local ttl_at = tonumber(redis.call("HGET", jk, "ttl_at") or "0")
  if ttl_at > 0 and now > ttl_at then
    unqueue(best_id)
    terminate(best_id, "cancelled", now, "ttl_expired", "not started within its ttl", false, retention_s,
      retention_count)
  else
    local family_model = string.match(best_route, "^([^@]+)")
    local b = choose(candidates[best_route], redis.call("HGET", jk, "avoid"), prefer[family_model])
    n = n + 1
    local token = token_base .. n
    redis.call("ZREM", key("q"), best_id)
    route_remove(best_id, best_route)
    redis.call("ZADD", key("lease", b.id), now + lease_ttl, best_id .. "|" .. token)
    redis.call("SADD", key("lease", "backends"), b.id)
    free[b.id] = free[b.id] - 1
    redis.call("HSET", jk, "status", "dispatched", "token", token, "backend", b.id)
    redis.call("INCR", key("dispatched"))
    allowed = allowed - 1
    out[#out + 1] = best_id
    out[#out + 1] = token
    out[#out + 1] = b.id
    out[#out + 1] = best_route
  end
end
return out
