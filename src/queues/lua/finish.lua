--[[
  Settles an attempt. Always releases the attempt's lease. Only the holder of the job's current
  token changes the job, and only while it is running: a late answer from a dead or superseded
  attempt is rejected, and a job cancelled meanwhile stays cancelled (its metering is recorded).

  Outcomes:
    complete  -> complete with outputs; the model's ms per work unit estimate is updated
    failed    -> error, not retriable (the request is bad)
    retry     -> counts a spent attempt; back in the queue at its place after `notbefore`, or error
                 with the last cause when the attempts are exhausted
    busy      -> back in the queue at its place, no attempt spent; the backend cools down briefly

  Then, in the same step, it starts the worker's next attempts (dispatch_jobs), so a freed slot is
  taken again without another round trip.

  Arguments (built and read by src/queues/finish-args.ts, which names them):
  ARGV[1] prefix  ARGV[2] job id  ARGV[3] token  ARGV[4] backend id  ARGV[5] now (ms)
  ARGV[6] outcome  ARGV[7] payload JSON {output, outputs, ctype, seed, gpu_ms, error, detail, notbefore, cool_ms}
    (`detail`, the cause as the worker saw it, goes to the attempt log entry only, which admins see)
  ARGV[8] max attempts  ARGV[9] retention seconds  ARGV[10] retention count
  ARGV[11] attempts to start next (free slots of the caller, 0 = none)  ARGV[12] backends JSON
  ARGV[13] preferred engines JSON  ARGV[14] lease ttl (ms)  ARGV[15] token base
  ARGV[16] the bytes of a sync job's single output whose CAS object is not written yet, or "": kept
    under out:<digest> (and listed in `outs`) when, and only when, the job completes here, so the
    settle and the bytes reach the AOF in one entry; the worker writes and fsyncs the object after
    and drops the copy (sync-outputs.ts; docs/decisions.md "Sync route")
  ARGV[17] "1": when the job ends here (complete, error), the reply carries its record as it now
    stands, so the sync caller of the same process needs no read (docs/decisions.md "Sync route");
    a resent call's reply does not
  The payload is checked before anything changes: a malformed call is answered with an error reply
  and changes nothing. A resent call (same token base within a minute) gets the reply of the first.
  Returns { code, status, next attempts (flat array, see dispatch.lua), the job's flat HGETALL when
    ARGV[17] asked for it and the job ended (else empty) }
  code 1 the job changed (status = its new status)
  E.missing no such job  E.stale (token or state)  E.cancelled cancelled meanwhile (metering recorded)
]]
-- What is wrong with the call's outcome and payload, or nil. A malformed call changes nothing (the
-- lease stays until it is settled properly or expires).
local function malformed(outcome, p)
  if outcome == "complete" then
    if type(p.output) ~= "string" or type(p.outputs) ~= "table" or #p.outputs == 0 then
      return "complete needs output and outputs"
    end
    for _, digest in ipairs(p.outputs) do
      if type(digest) ~= "string" then return "outputs must be digests" end
    end
  elseif outcome == "failed" or outcome == "retry" then
    if type(p.error) ~= "table" or type(p.error.code) ~= "string" then return outcome .. " needs an error" end
  elseif outcome ~= "busy" then
    return "unknown outcome " .. outcome
  end
  return nil
end

local function settle(id, token, backend, now, outcome, p, max_attempts, retention_s, retention_count, bytes)
  local jk = key("job", id)

  -- the slot goes back first (a deletion: Redis takes it at its memory limit too, and the writes that
  -- follow in this script with it)
  running_leave(backend, attempt_id(id, token))

  local f0 = redis.call("HMGET", jk, "status", "token", "route", "cust", "alog", "inputs", "work", "rperm")
  local status = f0[1]
  local alog = f0[5]
  if not status then return {E.missing} end
  if f0[2] ~= token then return {E.stale} end
  -- the attempt's permit of the deployment-wide running limit ends with it (docs/decisions.md "Pools")
  if f0[8] then
    redis.call("HDEL", jk, "rperm")
    lim_gone("r", f0[4], f0[8])
  end

  local gpu = {}
  if p.gpu_ms then
    gpu["gpu_ms"] = p.gpu_ms
    -- the tenant's measured GPU time (its share, for operators) while it is active (an inactive
    -- tenant keeps no record); a backend's figure: only a plausible one, below 10^12 ms, so HINCRBY
    -- always takes it
    local gpu_n = tonumber(p.gpu_ms)
    if f0[4] and gpu_n and gpu_n >= 0 and gpu_n < 1e12 and redis.call("EXISTS", key("t", f0[4])) == 1 then
      redis.call("HINCRBY", key("t", f0[4]), "gpu", math.floor(gpu_n))
    end
  end

  if status == "cancelled" then
    -- the job ended at the cancel; its attempt ends now
    alog_close(id, alog, now, "cancelled", gpu)
    end_job(id, nil, now, {gpu_ms = p.gpu_ms, drop = {"token"}})
    return {E.cancelled}
  end
  if status ~= "running" then return {E.stale} end

  if outcome == "complete" then
    local last = alog_close(id, alog, now, "complete", gpu)
    -- ms per work unit of the job's model, whatever backend constraint its route has (EWMA, alpha
    -- 0.2): the attempt's wall time / the job's work units (core/cost.ts; 1 for a job stored
    -- without them). The field is keys.ts workRateField(family/model).
    local work = tonumber(f0[7] or "")
    if not work or work <= 0 then work = 1 end
    local family_model = route_parts(f0[3])
    local field = "rate:" .. family_model
    local rate = (now - last["started_at"]) / work
    local old = tonumber(redis.call("HGET", key("stats"), field) or "0") or 0
    -- one sample moves the estimate by at most 4x either way: a client's tiny jobs (their fixed
    -- overhead over almost no work) cannot inflate the model's cost for every other tenant at once
    if old > 0 then rate = old * 0.8 + math.max(old / 4, math.min(old * 4, rate)) * 0.2 end
    redis.call("HSET", key("stats"), field, string.format("%.6g", rate))
    -- the customer may read its outputs with its bearer token (signed URLs work for anyone)
    local cust = f0[4]
    for _, digest in ipairs(p.outputs) do
      redis.call("SADD", key("own", digest), cust)
      redis.call("EXPIRE", key("own", digest), retention_s)
    end
    if bytes ~= "" and #p.outputs == 1 then
      redis.call("SET", key("out", p.output), bytes)
      redis.call("ZADD", key("outs"), now, p.output)
    end
    end_job(id, "complete", now, {drop = {"token"}, event = "complete",
      data = cjson.encode({output = p.output, outputs = p.outputs, gpu_ms = p.gpu_ms}), retention_s = retention_s,
      retention_count = retention_count, inputs = f0[6], outputs = p.outputs},
      "progress", "1", "output", p.output, "outputs", json_array(p.outputs), "ctype", p.ctype, "gpu_ms", p.gpu_ms,
      "seed", tostring(p.seed))
    return {1, "complete"}
  end

  if outcome == "failed" then
    alog_close(id, alog, now, "failed", {error = p.error.code, detail = p.detail})
    terminate(id, "error", now, p.error.code, p.error.message, false, retention_s, retention_count,
      {"token", "notbefore"})
    return {1, "error"}
  end

  if outcome == "retry" then
    alog_close(id, alog, now, "retry", {error = p.error.code, detail = p.detail})
    local spent = redis.call("HINCRBY", jk, "spent", 1)
    if spent >= max_attempts then
      terminate(id, "error", now, p.error.code, p.error.message .. " (after " .. spent .. " attempts)", true,
        retention_s, retention_count, {"token", "notbefore"})
      return {1, "error"}
    end
    redis.call("HSET", jk, "avoid", backend)
    requeue(id, tonumber(p.notbefore or 0), now, attempt_id(id, token))
    return {1, "queued"}
  end

  -- busy (the outcome was checked above)
  alog_close(id, alog, now, "busy", {detail = p.detail})
  if (tonumber(p.cool_ms) or 0) > 0 then
    redis.call("HSET", key("cool"), backend, now + tonumber(p.cool_ms))
  end
  requeue(id, 0, now, attempt_id(id, token))
  return {1, "queued"}
end

local token_base = ARGV[15]
local again = replayed(token_base)
if again then return again end
local now = tonumber(ARGV[5])
local outcome = ARGV[6]
local payload = cjson.decode(ARGV[7])
local retention_s = tonumber(ARGV[9])
local retention_count = tonumber(ARGV[10])
local bad = malformed(outcome, payload)
if bad then return redis.error_reply(bad) end
local code, status = unpack(settle(ARGV[2], ARGV[3], ARGV[4], now, outcome, payload, tonumber(ARGV[8]), retention_s,
  retention_count, ARGV[16] or ""))
local next_attempts = {}
local slots = tonumber(ARGV[11] or "0")
if slots > 0 then
  next_attempts = dispatch_jobs(now, slots, cjson.decode(ARGV[12]), cjson.decode(ARGV[13]), tonumber(ARGV[14]),
    token_base, retention_s, retention_count)
end
local reply = remember_reply(token_base, {code, status or "", next_attempts})
-- (not in the remembered reply: a resent call's caller reads the job instead)
if ARGV[17] == "1" and (status == "complete" or status == "error") then
  reply[4] = redis.call("HGETALL", key("job", ARGV[2]))
end
return reply
