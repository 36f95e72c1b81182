--[[
  The library's second part (src/queues/scripts.ts LIB_FILES: prepended after lib.lua): starting
  attempts. dispatch_jobs takes jobs in the order for a caller's free slots (dispatch.lua, and
  finish.lua for the settling slot), start_attempt leases a slot and marks a job running, and a
  dispatching call's reply is kept for a resend.
]]

-- The fields of a queued job that dispatch reads (one HMGET): whether it may start, where, and
-- what its attempt carries.
local function dispatch_fields(id)
  local f = redis.call("HMGET", key("job", id), "ttl_at", "avoid", "alog", "started", "attempt", "spent", "mod",
    "fam", "mdl", "task", "seed", "req", "ttl_def", "cust", "prio", "vs", "tier", "created", "mode", "lim", "qres", "rperm")
  -- A default ttl binds only a job that never started (starting removes an explicit one).
  local ttl_def = (not f[4]) and tonumber(f[13] or "0") or 0
  return {ttl_at = tonumber(f[1] or "0"), ttl_def = ttl_def, avoid = f[2], alog = f[3], started = f[4],
    attempt = f[5], spent = f[6], mod = f[7], fam = f[8], mdl = f[9], task = f[10], seed = f[11], req = f[12],
    cust = f[14], prio = f[15], vs = tonumber(f[16] or "0"), tier = f[17], created = tonumber(f[18]),
    mode = f[19], lim = f[20], qres = f[21], rperm = f[22]}
end

-- Starts an attempt of job `j` (its dispatch_fields): leases a slot of `b` (the caller checked it
-- has one), marks the job running under a new token, opens an attempt in the log and records
-- `started`. A job that started is never expired by its ttl again. An attempt that follows a busy
-- hand-back replaces that entry of the log (counting the hand-backs) instead of adding one, so a
-- backend answering busy for minutes does not grow the log or the events. Returns the attempt's
-- JSON and, beside it, its request (JSON). The attempt of a job's first start carries `waited`, the
-- ms since its admission (the metrics' wait time).
local function start_attempt(id, j, route, b, token, now, lease_ttl)
  local jk = key("job", id)
  running_join(id, token, b.id, now + lease_ttl, j.cust)
  if j.ttl_at > 0 then
    redis.call("ZREM", key("q", "ttl"), id)
    redis.call("HDEL", jk, "ttl_at")
  end
  local attempt = tonumber(j.attempt or "0") + 1
  local log = cjson.decode(j.alog or "[]")
  local last = log[#log]
  local entry = {attempt = attempt, backend = b.id, started_at = now}
  local after_busy = last ~= nil and last["outcome"] == "busy"
  if after_busy then
    attempt = last["attempt"]
    entry = {attempt = attempt, backend = b.id, started_at = now, busy = (last["busy"] or 0) + 1}
    log[#log] = entry
  else
    log[#log + 1] = entry
  end
  redis.call("HSET", jk, "status", "running", "token", token, "backend", b.id, "alog", json_array(log), "progress", "0",
    "attempt", attempt, "started", j.started or now)
  if not after_busy then add_event(id, "started", cjson.encode({backend = b.id, attempt = attempt}), now) end
  local waited = nil
  if not j.started and j.created then waited = math.max(0, now - j.created) end
  return {cjson.encode({id = id, token = token, backend = b.id, route = route, attempt = attempt,
    modality = j.mod, family = j.fam, model = j.mdl, task = j.task, seed = tonumber(j.seed),
    spent = tonumber(j.spent or "0"), waited = waited, sync = (j.mode == "sync") or nil}), j.req}
end

-- Replies of dispatching calls are kept a minute under their unique token base: a call that Redis
-- ran but whose reply was lost (and that the client resends after reconnecting) gets the same
-- reply instead of starting a second batch.
local function replayed(token_base)
  local cached = redis.call("GET", key("call", token_base))
  if cached then return cjson.decode(cached) end
  return nil
end

local function remember_reply(token_base, reply)
  redis.call("SET", key("call", token_base), cjson.encode(reply), "PX", 60000)
  return reply
end

-- The virtual time V (docs/decisions.md "Fair share") is the largest virtual start time of the jobs
-- started so far (start-time fair queueing's "start tag of the job in service").
local function advance_virtual_time(started_vs)
  local fk = key("fair")
  if started_vs > tonumber(redis.call("HGET", fk, "V") or "0") then redis.call("HSET", fk, "V", started_vs) end
end

-- Starts up to `slots` attempts, taking jobs in the global order among the routes that a backend
-- with a free slot serves (work conserving). Before that, jobs whose retry backoff is over become
-- dispatchable again. A job whose ttl passed is cancelled (`ttl_expired`) instead of started.
-- backends: array of {id, cap, engine, models, ok}; prefer: "family/model" -> engine.
local function dispatch_jobs(now, slots, backends, prefer, lease_ttl, token_base, retention_s, retention_count)
  local due = redis.call("ZRANGEBYSCORE", key("q", "later"), "-inf", now, "LIMIT", 0, 200)
  for _, id in ipairs(due) do
    redis.call("ZREM", key("q", "later"), id)
    local f = redis.call("HMGET", key("job", id), "status", "route", "score")
    if f[1] == "queued" then
      redis.call("HDEL", key("job", id), "notbefore")
      route_add(id, f[2], f[3])
    end
  end
  local out = {}
  if slots <= 0 then return out end

  -- free slots per backend: capacity minus live leases; none while unhealthy or cooling down
  local free = {}
  local cool = redis.call("HGETALL", key("cool"))
  local cooling = {}
  for i = 1, #cool, 2 do cooling[cool[i]] = tonumber(cool[i + 1]) end
  for _, b in ipairs(backends) do
    local f = 0
    if b.ok and (cooling[b.id] or 0) <= now then
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
  local model_of = {}
  for _, route in ipairs(routes) do
    local family_model, constraint = route_parts(route)
    model_of[route] = family_model
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
  -- the backend to avoid (it just failed this job) last, the model's preferred engine first,
  -- then the least loaded (share of capacity in use), configuration order on ties
  local function choose(list, avoid, engine)
    local best, best_rank = nil, nil
    for _, b in ipairs(list) do
      if free[b.id] > 0 then
        local rank = (b.cap - free[b.id]) / b.cap
        if b.engine ~= engine then rank = rank + 2 end
        if b.id == avoid then rank = rank + 4 end
        if best == nil or rank < best_rank then best, best_rank = b, rank end
      end
    end
    return best
  end

  -- heads of the route sets, refreshed only for the route just taken
  local heads = {}
  local function head_of(route)
    if heads[route] == nil then
      local h = redis.call("ZRANGE", key("q", "r", route), 0, 0, "WITHSCORES")
      if #h == 0 then
        redis.call("SREM", key("q", "routes"), route)
        candidates[route] = nil
        heads[route] = false
      else
        heads[route] = {h[1], tonumber(h[2])}
      end
    end
    return heads[route]
  end

  -- a tenant at its running-at-once limit: its job goes to the tenant's held set (it keeps its place
  -- in the order; running_leave puts it back) and dispatch looks further
  -- (read once per tenant and call, then counted here as this call starts its jobs). A negative cap
  -- is a deployment-wide limit (docs/decisions.md "Pools"): a job starts only with a permit of the
  -- ledger (`rperm`, lim_grant.lua); without one it is held, and its tenant waits in lim:wait.
  local limits = {}
  local function at_limit(cust, permit)
    local l = limits[cust]
    if l == nil then
      local f = redis.call("HMGET", key("t", cust), "r", "cap")
      l = {r = tonumber(f[1] or "0"), cap = tonumber(f[2] or "0")}
      limits[cust] = l
    end
    if l.cap < 0 then return not permit end
    return l.cap > 0 and l.r >= l.cap
  end

  local n = 0
  local expired = 0
  local held = 0
  local vmax = nil
  while n < slots and expired < 100 and held < 200 do
    local best_route, best_id, best_score = nil, nil, nil
    for _, route in ipairs(routes) do
      if candidates[route] and any_free(candidates[route]) then
        local h = head_of(route)
        if h and (best_score == nil or h[2] < best_score) then
          best_route, best_id, best_score = route, h[1], h[2]
        end
      end
    end
    if best_id == nil then break end
    local j = dispatch_fields(best_id)
    heads[best_route] = nil
    if (j.ttl_at > 0 and now >= j.ttl_at) or (j.ttl_def > 0 and now >= j.ttl_def) then
      expired = expired + 1
      queue_leave(best_id)
      terminate(best_id, "cancelled", now, "ttl_expired", "not started within its ttl", false, retention_s,
        retention_count)
    elseif at_limit(j.cust, j.rperm) then
      held = held + 1
      route_remove(best_id, best_route)
      redis.call("ZADD", key("q", "held", j.cust), best_score, best_id)
      redis.call("HINCRBY", key("t", j.cust), "h", 1)
      if limits[j.cust].cap < 0 then redis.call("SADD", key("lim", "wait"), j.cust) end
    else
      local b = choose(candidates[best_route], j.avoid, prefer[model_of[best_route]])
      n = n + 1
      if vmax == nil or j.vs > vmax then vmax = j.vs end
      free[b.id] = free[b.id] - 1
      -- the attempt holds its slot before the job leaves the queue: its tenant stays active throughout
      local started = start_attempt(best_id, j, best_route, b, token_base .. n, now, lease_ttl)
      queue_leave(best_id, best_route, j.cust, j.prio, j.tier, j.lim and (j.qres or best_id))
      limits[j.cust].r = limits[j.cust].r + 1
      out[#out + 1] = started[1]
      out[#out + 1] = started[2]
    end
  end
  if vmax then advance_virtual_time(vmax) end
  -- cut short by the jobs it held back: the dispatchers go on at once, not at their next tick
  if held >= 200 and n < slots then redis.call("PUBLISH", key("ch", "wake"), "held") end
  return out
end
