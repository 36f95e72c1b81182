--[[
  Shared helpers, prepended to every scheduler script at load time (after `E`, the table of return
  codes generated from src/queues/script-codes.ts, in the scripts that use it). Every script passes
  the key prefix as ARGV[1]; keys are built with key(...), their names those of src/queues/keys.ts
  (all share the prefix's hash tag; test/unit/lua-seams.test.ts and test/integration/
  lua-mirrors.test.ts check the names, the hooks below and what keys.ts mirrors).
  Job hash fields: id cust tier prio mod fam mdl task fmt seed mode req work (admission; `work`: the
  job's work units, core/cost.ts, which finish.lua's ms-per-unit estimate divides by), status route
  score created ttl_at (a ttl the client sent; also in the ttl set) ttl_def (the default ttl of a job
  sent without one; not indexed, see expire.lua) (the order), token backend attempt spent alog started progress avoid
  notbefore (attempts), output outputs ctype gpu_ms completed err (the end), backend_req webhook idem
  (options), inputs (the CAS digests of its input images, space-separated; absent when none).
  Job states: queued -> running -> complete | error | cancelled; running -> queued (retry, busy,
  lost worker); queued -> cancelled. A running job holds a lease on one backend, its member the
  attempt id "<id>|<token>".

  The hooks, each the only place of its kind: order_key (every score), add_event (every job event),
  queue_join / queue_leave and running_join / running_leave (every change of a job's membership of
  the queue or of a backend slot), end_job (every terminal transition).
]]
local P = ARGV[1]
local function key(...)
  return P .. ":" .. table.concat({...}, ":")
end

-- The order key of a queued job (docs/decisions.md "Fair share"): `vkey`, its tenant's virtual start
-- time plus its priority offset (fleet ms, kept in 1/8 ms), then its admission sequence modulo 2^17,
-- so equal keys start first come, first served. Every score is computed here; keys.ts mirrors the
-- layout (orderKey) for its readers.
local ORDER_RESOLUTION = 8
local SEQ_SPAN = 131072
local function order_key(vkey, seq)
  return math.floor(vkey * ORDER_RESOLUTION) * SEQ_SPAN + (seq % SEQ_SPAN)
end

-- An attempt's id "<job id>|<token>" (src/core/attempt-id.ts): the member of its backend lease.
local function attempt_id(id, token)
  return id .. "|" .. token
end

-- The job id and token of an attempt id.
local function attempt_parts(member)
  return string.match(member, "^(.+)|(.+)$")
end

-- The parts of a route "family/model[@constraint]" (src/core/model-route.ts): "family/model" and the
-- constraint ("" when none).
local function route_parts(route)
  return string.match(route, "^([^@]+)@?(.*)$")
end

local function job_get(id, field)
  return redis.call("HGET", key("job", id), field)
end

-- Appends an event ("<name>\n<data JSON>") to the job's event list and wakes listeners: every job
-- event goes through here. Its id is its 1-based index in the list: monotonic per job, and a resume
-- reads from that index on.
local function add_event(id, name, data)
  local seq = redis.call("RPUSH", key("ev", id), name .. "\n" .. data)
  redis.call("PUBLISH", key("ch", "ev"), id)
  return seq
end

local function json_array(t)
  if #t == 0 then return "[]" end
  return cjson.encode(t)
end

-- Closes the open attempt of the attempt log with an outcome (and optional extra members). `raw` is
-- the job's `alog` field, read by the caller together with the fields it checks.
local function alog_close(id, raw, now, outcome, extra)
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
  return last
end

local function route_add(id, route, score)
  redis.call("ZADD", key("q", "r", route), score, id)
  redis.call("SADD", key("q", "routes"), route)
end

local function route_remove(id, route)
  local rk = key("q", "r", route)
  redis.call("ZREM", rk, id)
  if redis.call("ZCARD", rk) == 0 then
    redis.call("SREM", key("q", "routes"), route)
  end
end

-- Tenants (docs/decisions.md "Fair share"). A tenant is active while it has a job queued or an
-- attempt holding a slot; `W` in the fair hash sums the weights of the active tenants (each counted
-- with `aw`, the weight it had when it became active or last admitted a job). An inactive tenant's
-- next job starts at the virtual time (admit.lua): no credit, no debt.
local function tenant_activate(cust)
  local tk = key("t", cust)
  local w = tonumber(redis.call("HGET", tk, "w") or "1")
  redis.call("HSET", tk, "aw", w)
  redis.call("HINCRBY", key("fair"), "W", w)
  redis.call("SADD", key("tenants"), cust)
end

local function tenant_deactivate(cust)
  local tk = key("t", cust)
  redis.call("HINCRBY", key("fair"), "W", -tonumber(redis.call("HGET", tk, "aw") or "0"))
  redis.call("SREM", key("tenants"), cust)
  -- nothing of an inactive tenant is needed: its next job starts at V and brings its weight and limit
  -- again, its counts are 0 (so the records do not grow with every customer ever seen)
  redis.call("DEL", tk)
end

-- Counts a tenant's queued (`q`) or running (`r`) jobs up or down by one; it becomes active with its
-- first and inactive with its last. Returns the new count.
local function tenant_count(cust, field, delta)
  local tk = key("t", cust)
  local n = redis.call("HINCRBY", tk, field, delta)
  if (delta > 0 and n == 1) or (delta < 0 and n == 0) then
    local other = tonumber(redis.call("HGET", tk, field == "q" and "r" or "q") or "0")
    if other <= 0 then
      if delta > 0 then tenant_activate(cust) else tenant_deactivate(cust) end
    end
  end
  return n
end

-- Membership. A job is in the queue (the global order) from its admission until an attempt starts
-- or it ends, and again after a retry or a busy hand-back; an attempt holds a backend slot (its
-- lease) from its start until it is settled or its lease expires (renew.lua extends a lease, which
-- changes neither). These four are the only places that change either, and they keep the per-tenant
-- counts (queued, running), the active tenants and the queued count per priority.

-- The job joins the queue at `score`: the global order and its route's dispatch set, or, with
-- `notbefore`, the backoff set until then (dispatch_jobs moves it to its route's set at that time).
-- `cust` and `prio` are the job's customer and priority.
local function queue_join(id, score, route, notbefore, cust, prio)
  redis.call("ZADD", key("q"), score, id)
  if notbefore then
    redis.call("ZADD", key("q", "later"), notbefore, id)
  else
    route_add(id, route, score)
  end
  tenant_count(cust, "q", 1)
  redis.call("HINCRBY", key("fair"), prio, 1)
end

-- The job leaves the queue. With `route`: dispatch took it from that route's set to start it (it is
-- in no backoff or held set, and start_attempt clears its ttl); `cust` and `prio` are then the job's.
-- Without: it leaves from wherever it waits (global order, route set, backoff set, ttl set, its
-- tenant's held set), as a cancelled or expired job does.
local function queue_leave(id, route, cust, prio)
  if redis.call("ZREM", key("q"), id) == 0 then return end
  if route then
    route_remove(id, route)
  else
    local f = redis.call("HMGET", key("job", id), "route", "cust", "prio")
    route, cust, prio = f[1], f[2], f[3]
    if route then route_remove(id, route) end
    redis.call("ZREM", key("q", "later"), id)
    redis.call("ZREM", key("q", "ttl"), id)
    if redis.call("ZREM", key("q", "held", cust), id) == 1 then redis.call("HINCRBY", key("t", cust), "h", -1) end
  end
  tenant_count(cust, "q", -1)
  redis.call("HINCRBY", key("fair"), prio, -1)
end

-- Attempt `token` of the job holds a slot of `backend` until `expiry` (ms) unless renewed; `cust` is
-- the job's customer.
local function running_join(id, token, backend, expiry, cust)
  local member = attempt_id(id, token)
  redis.call("ZADD", key("lease", backend), expiry, member)
  redis.call("SADD", key("lease", "backends"), backend)
  redis.call("SET", key("att", member), cust)
  tenant_count(cust, "r", 1)
end

-- Up to `n` of a tenant's held jobs (the first in the order) may start again: back to their routes'
-- dispatch sets.
local function release_held(cust, n)
  if n <= 0 then return end
  local popped = redis.call("ZPOPMIN", key("q", "held", cust), n)
  if #popped == 0 then return end
  for i = 1, #popped, 2 do
    local route = job_get(popped[i], "route")
    if route then route_add(popped[i], route, popped[i + 1]) end
  end
  redis.call("HINCRBY", key("t", cust), "h", -(#popped / 2))
  redis.call("PUBLISH", key("ch", "wake"), popped[1])
end

-- The attempt `member` (its attempt id) gives its slot of `backend` back; true when it held one. Its
-- tenant's running count drops, and held jobs of the tenant may start again.
local function running_leave(backend, member)
  if redis.call("ZREM", key("lease", backend), member) == 0 then return false end
  local cust = redis.call("GETDEL", key("att", member))
  if not cust then return true end
  local r = tenant_count(cust, "r", -1)
  local f = redis.call("HMGET", key("t", cust), "h", "cap")
  local held = tonumber(f[1] or "0")
  if held > 0 then
    -- as many as it has free slots; all of them once it has no limit any more (its tier changed)
    local cap = tonumber(f[2] or "0")
    release_held(cust, cap > 0 and cap - r or held)
  end
  return true
end

-- Puts a job back in the queue at its original score (it keeps its place in the order).
-- With notbefore > now it waits in the backoff set first and is not dispatchable until then.
local function requeue(id, notbefore, now)
  local jk = key("job", id)
  local f = redis.call("HMGET", jk, "score", "route", "cust", "prio")
  local score, route = f[1], f[2]
  if notbefore and notbefore > now then
    queue_join(id, score, route, notbefore, f[3], f[4])
    redis.call("HSET", jk, "status", "queued", "notbefore", notbefore)
    redis.call("HDEL", jk, "token")
  else
    queue_join(id, score, route, nil, f[3], f[4])
    redis.call("HSET", jk, "status", "queued")
    redis.call("HDEL", jk, "token", "notbefore")
    redis.call("PUBLISH", key("ch", "wake"), id)
  end
end

-- CAS references (docs/decisions.md "CAS garbage collection"). A queued or running job holds one
-- count per input digest in the hash cas:live (admit.lua); its terminal transition (end_job ->
-- retire, exactly once per job) drops those counts and pins its inputs and outputs in the sorted set
-- cas:pin until its retention ends. Pin scores only grow (ZADD GT), so a later, shorter pin of the
-- same object never shortens a longer one.
-- inputs: the job's `inputs` field (false: none); outputs: a table of digests (nil: none).
local function release_objects(inputs, outputs, until_ms)
  local pins = {}
  if inputs then
    local live = key("cas", "live")
    for digest in string.gmatch(inputs, "%S+") do
      if redis.call("HINCRBY", live, digest, -1) <= 0 then redis.call("HDEL", live, digest) end
      pins[#pins + 1] = until_ms
      pins[#pins + 1] = digest
    end
  end
  if outputs then
    for _, digest in ipairs(outputs) do
      pins[#pins + 1] = until_ms
      pins[#pins + 1] = digest
    end
  end
  if #pins > 0 then redis.call("ZADD", key("cas", "pin"), "GT", unpack(pins)) end
end

-- A terminal job is kept for retention_s seconds and among the newest retention_count terminal jobs.
-- It is out of the ttl set already: a queued job left the queue first (queue_leave), and starting
-- removed the ttl. Called by end_job only.
-- Its CAS objects are released here (release_objects): `inputs` is its `inputs` field when the caller
-- read it already (false when it has none; nil: read here), `outputs` its output digests.
local function retire(id, now, retention_s, retention_count, inputs, outputs)
  if inputs == nil then inputs = job_get(id, "inputs") end
  release_objects(inputs, outputs, now + retention_s * 1000)
  redis.call("EXPIRE", key("job", id), retention_s)
  redis.call("EXPIRE", key("ev", id), retention_s)
  local done = key("done")
  redis.call("ZADD", done, now, id)
  -- ids whose records expired by age leave the set too (a few per call)
  local aged = redis.call("ZRANGEBYSCORE", done, "-inf", now - retention_s * 1000, "LIMIT", 0, 20)
  if #aged > 0 then redis.call("ZREM", done, unpack(aged)) end
  local excess = redis.call("ZCARD", done) - retention_count
  if excess > 0 then
    local old = redis.call("ZPOPMIN", done, math.min(excess, 50))
    for i = 1, #old, 2 do
      redis.call("DEL", key("job", old[i]), key("ev", old[i]))
    end
  end
end

-- Terminal transitions. Every path into a terminal state goes through end_job, and so does the end of
-- the last attempt of a job cancelled while that attempt ran: the one place where the next issues
-- append a job's billing and audit records.
--   status complete | error | cancelled: the job enters it now. The status, the completion time and
--     the field/value pairs `...` are written, the fields `e.drop` removed, the event `e.event` with
--     `e.data` (JSON) added and the job retired (retention, CAS objects: `e.inputs` and `e.outputs` as
--     retire takes them; `e.retention_s`, `e.retention_count`).
--   status nil: the job was cancelled while an attempt ran and that attempt is over now (settled, or
--     its lease expired): its metering `e.gpu_ms` (when known) is written and `e.drop` removed; the
--     job keeps its status and was retired at the cancel.
local function end_job(id, status, now, e, ...)
  local jk = key("job", id)
  if status then
    redis.call("HSET", jk, "status", status, "completed", now, ...)
  elseif e.gpu_ms then
    redis.call("HSET", jk, "gpu_ms", e.gpu_ms)
  end
  if e.drop then redis.call("HDEL", jk, unpack(e.drop)) end
  if status then
    add_event(id, e.event, e.data)
    retire(id, now, e.retention_s, e.retention_count, e.inputs, e.outputs)
  end
end

-- Ends a job in a terminal state with an error object (error, or cancelled with a reason code).
-- `drop`: fields to remove (default: notbefore; a settled attempt's job also drops its token).
local function terminate(id, status, now, code, message, retriable, retention_s, retention_count, drop)
  local err = cjson.encode({code = code, message = message, retriable = retriable})
  end_job(id, status, now, {drop = drop or {"notbefore"}, event = "error", data = err, retention_s = retention_s,
    retention_count = retention_count}, "err", err)
end

-- The fields of a queued job that dispatch reads (one HMGET): whether it may start, where, and
-- what its attempt carries.
local function dispatch_fields(id)
  local f = redis.call("HMGET", key("job", id), "ttl_at", "avoid", "alog", "started", "attempt", "spent", "mod",
    "fam", "mdl", "task", "seed", "req", "ttl_def", "cust", "prio", "vs")
  -- A default ttl binds only a job that never started (starting removes an explicit one).
  local ttl_def = (not f[4]) and tonumber(f[13] or "0") or 0
  return {ttl_at = tonumber(f[1] or "0"), ttl_def = ttl_def, avoid = f[2], alog = f[3], started = f[4],
    attempt = f[5], spent = f[6], mod = f[7], fam = f[8], mdl = f[9], task = f[10], seed = f[11], req = f[12],
    cust = f[14], prio = f[15], vs = tonumber(f[16] or "0")}
end

-- Starts an attempt of job `j` (its dispatch_fields): leases a slot of `b` (the caller checked it
-- has one), marks the job running under a new token, opens an attempt in the log and records
-- `started`. A job that started is never expired by its ttl again. An attempt that follows a busy
-- hand-back replaces that entry of the log (counting the hand-backs) instead of adding one, so a
-- backend answering busy for minutes does not grow the log or the events. Returns the attempt's
-- JSON and, beside it, its request (JSON).
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
  if not after_busy then add_event(id, "started", cjson.encode({backend = b.id, attempt = attempt})) end
  return {cjson.encode({id = id, token = token, backend = b.id, route = route, attempt = attempt,
    modality = j.mod, family = j.fam, model = j.mdl, task = j.task, seed = tonumber(j.seed),
    spent = tonumber(j.spent or "0")}), j.req}
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
  -- (read once per tenant and call, then counted here as this call starts its jobs)
  local limits = {}
  local function at_limit(cust)
    local l = limits[cust]
    if l == nil then
      local f = redis.call("HMGET", key("t", cust), "r", "cap")
      l = {r = tonumber(f[1] or "0"), cap = tonumber(f[2] or "0")}
      limits[cust] = l
    end
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
    elseif at_limit(j.cust) then
      held = held + 1
      route_remove(best_id, best_route)
      redis.call("ZADD", key("q", "held", j.cust), best_score, best_id)
      redis.call("HINCRBY", key("t", j.cust), "h", 1)
    else
      local b = choose(candidates[best_route], j.avoid, prefer[model_of[best_route]])
      n = n + 1
      if vmax == nil or j.vs > vmax then vmax = j.vs end
      free[b.id] = free[b.id] - 1
      -- the attempt holds its slot before the job leaves the queue: its tenant stays active throughout
      local started = start_attempt(best_id, j, best_route, b, token_base .. n, now, lease_ttl)
      queue_leave(best_id, best_route, j.cust, j.prio)
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
