--[[
  Shared helpers, followed by lib_dispatch.lua (starting attempts: dispatch_jobs and its parts): each
  script gets, prepended at load time, the definitions of both that it uses (src/queues/scripts.ts
  libFor), and its return codes `E.<name>` (src/queues/script-codes.ts) as numbers. Every top-level
  statement here is a `local function` ending with an `end` at a line's start or a one-line `local`
  (scripts.ts splits the library by them). Every script passes
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
-- Up to three parts (every key name has at most three); written out, not table.concat({...}): a call
-- then builds no table, which makes it about 3x cheaper, and a script builds a dozen keys per call.
local function key(a, b, c)
  if b == nil then return P .. ":" .. a end
  if c == nil then return P .. ":" .. a .. ":" .. b end
  return P .. ":" .. a .. ":" .. b .. ":" .. c
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

-- Appends an event ("<name>\n<data JSON>") to the job's event list and wakes listeners with the
-- message "<job id> <name>" (src/api/event-hub.ts): every job event goes through here. The event's
-- id is its 1-based index in the list: monotonic per job, and a resume reads from that index on.
-- The outbox (docs/decisions.md "Outbox"): every terminal event, and every other event the job's
-- webhook subscribes to, leaves the scheduler here, in the step that makes it, with the job's whole
-- record as it stands (consumers never read job records: those expire). src/core/outbox.ts reads it.
local TERMINAL_EVENT = {complete = true, error = true, cancelled = true}
local function add_event(id, name, data, now)
  local seq = redis.call("RPUSH", key("ev", id), name .. "\n" .. data)
  redis.call("PUBLISH", key("ch", "evn"), id .. " " .. name)
  -- the previous release's API listens for the bare id (keys.ts legacyEventChannel)
  redis.call("PUBLISH", key("ch", "ev"), id)
  local jk = key("job", id)
  local send = TERMINAL_EVENT[name]
  if not send then
    local subscribed = redis.call("HGET", jk, "webhook_events")
    send = subscribed and string.find(subscribed, '"' .. name .. '"', 1, true)
  end
  if send then
    local h = redis.call("HGETALL", jk)
    local rec = {}
    for i = 1, #h, 2 do rec[h[i]] = h[i + 1] end
    redis.call("XADD", key("outbox"), "*", "id", id, "ev", name, "seq", seq, "at", now, "data", data, "rec",
      cjson.encode(rec))
  end
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

-- Returns true when the job is the only one of its route (the route set was empty: it joins the
-- routes set then, which holds a route exactly while its set holds jobs).
local function route_add(id, route, score)
  local rk = key("q", "r", route)
  redis.call("ZADD", rk, score, id)
  if redis.call("ZCARD", rk) == 1 then
    redis.call("SADD", key("q", "routes"), route)
    return true
  end
  return false
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

-- Deployment-wide limits (docs/decisions.md "Pools"; queues/limits-ledger.ts): with POOLS_FILE a job
-- carries `lim`, and its queued place and running permit are entries of the deployment's ledger
-- (under REDIS_PREFIX, on another master on a Cluster). A queued place's member is the job id (from
-- its admission) or the attempt id after which it was put back (`qres`); a permit's member is in
-- `rperm`. Each end of one is appended here in the same step that ends it; the ledger releases it
-- (pool-limits.ts drains the list, at least once).
local function lim_gone(kind, cust, member)
  redis.call("RPUSH", key("lim", "gone"), kind .. "\t" .. cust .. "\t" .. member)
end

-- Membership. A job is in the queue (the global order) from its admission until an attempt starts
-- or it ends, and again after a retry or a busy hand-back; an attempt holds a backend slot (its
-- lease) from its start until it is settled or its lease expires (renew.lua extends a lease, which
-- changes neither). These four are the only places that change either, and they keep the per-tenant
-- counts (queued, running), the active tenants and the queued counts per priority and per tier and
-- priority.

-- The queued count of a tier and priority in the fair hash (keys.ts tierDepthField; the metrics'
-- queue depth reads them at scrape time).
local function depth_field(tier, prio)
  return "q:" .. (tier or "") .. ":" .. prio
end

-- The job joins the queue at `score`: the global order and its route's dispatch set, or, with
-- `notbefore`, the backoff set until then (dispatch_jobs moves it to its route's set at that time).
-- `cust`, `prio` and `tier` are the job's customer, priority and tier.
-- Returns true when the job joined its route's dispatch set as the only one there (route_add).
local function queue_join(id, score, route, notbefore, cust, prio, tier)
  redis.call("ZADD", key("q"), score, id)
  local first = false
  if notbefore then
    redis.call("ZADD", key("q", "later"), notbefore, id)
  else
    first = route_add(id, route, score)
  end
  tenant_count(cust, "q", 1)
  redis.call("HINCRBY", key("fair"), prio, 1)
  redis.call("HINCRBY", key("fair"), depth_field(tier, prio), 1)
  return first
end

-- The job leaves the queue. With `route`: dispatch took it from that route's set to start it (it is
-- in no backoff or held set, and start_attempt clears its ttl); `cust`, `prio` and `tier` are then
-- the job's. Without: it leaves from wherever it waits (global order, route set, backoff set, ttl
-- set, its tenant's held set), as a cancelled or expired job does.
-- `qmember` (dispatch, for a job with `lim`): its queued place in the ledger, which ends here.
local function queue_leave(id, route, cust, prio, tier, qmember)
  if redis.call("ZREM", key("q"), id) == 0 then return end
  if route then
    route_remove(id, route)
    if qmember then lim_gone("q", cust, qmember) end
  else
    local f = redis.call("HMGET", key("job", id), "route", "cust", "prio", "tier", "lim", "qres", "rperm")
    route, cust, prio, tier = f[1], f[2], f[3], f[4]
    if route then route_remove(id, route) end
    redis.call("ZREM", key("q", "later"), id)
    redis.call("ZREM", key("q", "ttl"), id)
    if redis.call("ZREM", key("q", "held", cust), id) == 1 then redis.call("HINCRBY", key("t", cust), "h", -1) end
    if f[5] then
      -- it leaves without starting: its queued place ends, and the permit it may hold already
      lim_gone("q", cust, f[6] or id)
      if f[7] then
        redis.call("HDEL", key("job", id), "rperm")
        lim_gone("r", cust, f[7])
      end
    end
  end
  tenant_count(cust, "q", -1)
  redis.call("HINCRBY", key("fair"), prio, -1)
  redis.call("HINCRBY", key("fair"), depth_field(tier, prio), -1)
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
  local cap = tonumber(f[2] or "0")
  -- a negative cap is a deployment-wide limit: its held jobs wait for permits (lim_grant.lua)
  if held > 0 and cap >= 0 then
    -- as many as it has free slots; all of them once it has no limit any more (its tier changed)
    release_held(cust, cap > 0 and cap - r or held)
  end
  return true
end

-- Puts a job back in the queue at its original score (it keeps its place in the order).
-- With notbefore > now it waits in the backoff set first and is not dispatchable until then.
-- `member`: the attempt id of the attempt that ended, its queued place in the ledger for a job with
-- `lim` (the caller reserved it before this step).
-- `lrun` (with `lim`): the deployment-wide running limit the job was admitted under. When this job
-- was its tenant's last in the pool, the tenant's record went with its attempt and comes back here
-- without its limit; the negative cap is put back, or the job would start without a permit.
local function requeue(id, notbefore, now, member)
  local jk = key("job", id)
  local f = redis.call("HMGET", jk, "score", "route", "cust", "prio", "tier", "lim", "lrun")
  local score, route = f[1], f[2]
  if f[6] then redis.call("HSET", jk, "qres", member) end
  if notbefore and notbefore > now then
    queue_join(id, score, route, notbefore, f[3], f[4], f[5])
    redis.call("HSET", jk, "status", "queued", "notbefore", notbefore)
    redis.call("HDEL", jk, "token")
  else
    queue_join(id, score, route, nil, f[3], f[4], f[5])
    redis.call("HSET", jk, "status", "queued")
    redis.call("HDEL", jk, "token", "notbefore")
    redis.call("PUBLISH", key("ch", "wake"), id)
  end
  if f[7] then redis.call("HSETNX", key("t", f[3]), "cap", -tonumber(f[7])) end
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
    add_event(id, e.event, e.data, now)
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
