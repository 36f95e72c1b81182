--[[
  Admits jobs, one after the other, each as a call of its own would: ARGV[1] is the prefix, then
  come three arguments per job (below), and the reply holds two numbers per job: its reply's two, the
  second -1 where a reply has one only. The API sends the admissions of an event-loop turn as one
  call (queues/admit-batch.ts): one command and one script run for all of them. Every job's figures
  are decoded before anything is written, so a call fails whole or not at all (after the first write
  Redis no longer refuses a script for memory), and each job is either fully admitted or not at all.

  Admitting a job: stores its record, places it in the global order (position) and in its route's
  dispatch set, and wakes the dispatchers when it can start at once (nothing ahead, or the first job
  of its route).

  The order key (docs/decisions.md "Fair share"; lib.lua order_key) is start-time fair queueing: the
  job's virtual start time S = max(V, F) (V the virtual time, F its tenant's virtual finish time), and
  its tenant's F advanced by cost / (C · w) (cost: its estimated GPU ms; w: its tenant's weight; C:
  the fleet's slots), so a unit of virtual time is a millisecond of the whole fleet for one unit of
  weight; then the priority offset (virtual ms, the same for every job of a priority). Positions are
  read the same way (ZRANK of the order).

  Per job (ARGV[2], [3], [4] for the first, [5], [6], [7] for the second, …): its id; the request
  (JSON, stored as the field `req` as it is); the rest, a JSON array of strings `a` (one argument:
  each argument costs the caller a length and a string concatenation in ioredis), numbers written as
  the caller formats them:
  a[1] route ("family/model" or "family/model@backend")  a[2] priority offset (virtual ms)
  a[3] now (ms)  a[4] ttl deadline (ms, 0 = none)  a[5] highest position admitted (-1 = no limit)
  a[6] "1" when the client sent the ttl (indexed in the ttl set), "0" for the default ttl (stored
  as ttl_def and found by expire.lua's sweep: no index to keep per job)
  a[7] estimated cost (GPU ms)  a[8] tenant weight  a[9] tenant running-at-once limit (0 = none)
  a[10] tenant queued-at-once limit (-1 = none)  a[11] queued-at-once limit of everyone (-1 = none)
  a[12] fleet slots (C: the slots of every backend known, a stable figure; 0 = unknown: the last
  figure stored)
  a[13] customer  a[14] priority  a[15] tier ("" = none)  a[16] the CAS digests of its input images,
  space-separated ("" = none; each takes a reference, see lib.lua release_objects)
  a[17] the sync tier's check (-1 = none): the slots of the healthy backends serving the job's route
  a[18] the waves the caller's budget allows (⌊budget / the cost of a job ahead⌋)  a[19] those
  backends, space-separated  a[20] the slots of the live workers serving them (-1 = no worker
  announces any: no cap)  a[21] every backend those workers serve, space-separated. The job is
  admitted only at a position p that starts within the budget on the leases held now: with c the
  smaller of the two slot counts and f the slots free now (the backends' slots less their leases,
  and no more than the workers' slots less the leases of every backend they serve),
  p ≤ (waves + 1) · c − (c − f) − 1; and, within the first wave, only while its tenant's running and
  queued jobs are below its running-at-once limit (else it would be held until one of them ends)
  a[22] on: the stored fields, field, value, field, value, … (`cust`, `prio`, `tier` and `inputs`
  among them as a[13-16] give them, and the ttl's field as a[6] names it), handed to HSET as they are
  A job's reply: { position } (the caller derives the ETA from it)
  { E.exists }  a job with this id exists
  { E.too_far, position }  it could not start within the caller's limit; nothing was stored
  { E.queue_full, queued }  the tenant has its queued-at-once limit of jobs queued; nothing was stored
  { E.queue_full_all, queued }  the queue holds the limit of everyone; nothing was stored
  { E.resent, position }  this very admission was stored already (same id, admission time and
                    customer: Redis ran it, the reply was lost and the client resent it); position -1
                    when it is no longer queued
  { E.voided }  this id was voided (admit_resolve.lua settled a lost admission as "not admitted" and
          left a marker in the job's key): a late delivery of this call stores nothing
]]
-- The leases held on the backends of `list` (space-separated ids).
local function leases_of(list)
  local n = 0
  for b in string.gmatch(list, "%S+") do n = n + redis.call("ZCARD", key("lease", b)) end
  return n
end

local function admit_one(id, req, a)
  local route = a[1]
  local offset = tonumber(a[2])
  local now = tonumber(a[3])
  local ttl_at = tonumber(a[4])
  local max_position = tonumber(a[5])
  local cost = tonumber(a[7])
  local weight = tonumber(a[8])
  local tenant_max = tonumber(a[10])
  local queue_max = tonumber(a[11])
  local slots = tonumber(a[12])
  local jk = key("job", id)
  local cust = a[13]
  local tier = a[15] ~= "" and a[15] or nil
  local tk = key("t", cust)

  -- an existing record: this very admission resent, a voided id, or another job's
  local prior = redis.call("HMGET", jk, "created", "cust", "void", "id")
  if prior[3] then return {E.voided} end
  if prior[4] then
    if tonumber(prior[1]) == now and prior[2] == cust then
      return {E.resent, redis.call("ZRANK", key("q"), id) or -1}
    end
    return {E.exists}
  end

  local t = redis.call("HMGET", tk, "F", "q", "aw", "r")
  local queued = tonumber(t[2] or "0")
  if tenant_max >= 0 and queued >= tenant_max then return {E.queue_full, queued} end
  -- the fair-share record: virtual time, fleet slots and the queued count of each priority (kept by
  -- queue_join/queue_leave with the order itself: their sum is the order's size)
  local fair = redis.call("HMGET", key("fair"), "V", "C", "high", "normal", "low")
  if queue_max >= 0 then
    local all = tonumber(fair[3] or "0") + tonumber(fair[4] or "0") + tonumber(fair[5] or "0")
    if all >= queue_max then return {E.queue_full_all, all} end
  end
  local v = tonumber(fair[1] or "0")
  -- the fleet's slots as the caller knows them; while it knows none (no worker reported lately), the
  -- last figure an admission brought
  if slots > 0 then
    if tonumber(fair[2] or "0") ~= slots then redis.call("HSET", key("fair"), "C", slots) end
  else
    slots = math.max(1, tonumber(fair[2] or "1"))
  end
  -- an active tenant (aw set) starts where its last job finished; an inactive one at V: no credit for
  -- idle time, no debt for jobs it no longer has
  local start = v
  if t[3] then start = math.max(v, tonumber(t[1] or "0")) end
  local finish = start + cost / (slots * weight)

  local seq = redis.call("INCR", key("q", "seq"))
  -- The score as the exact integer it is, written out once: Lua's tostring ("(" .. score) keeps 14
  -- digits, so from 10^14 on (a day of virtual time) the bound would be rounded and the position miss
  -- or count jobs of the same key; and every number handed to redis.call is formatted again (%.17g).
  local score = string.format("%.0f", order_key(start + offset, seq))
  local position = redis.call("ZCOUNT", key("q"), "-inf", "(" .. score)
  local limit = max_position >= 0 and max_position or nil
  local route_slots = tonumber(a[17])
  if route_slots >= 0 then
    local waves = tonumber(a[18])
    -- (c and f of the header; `slots` above is the fleet's, the fair share's unit)
    local c, free = route_slots, route_slots - leases_of(a[19])
    local worker_slots = tonumber(a[20])
    if worker_slots >= 0 then
      c = math.min(c, worker_slots)
      free = math.min(free, worker_slots - leases_of(a[21]))
    end
    local live = (waves + 1) * c - (c - math.max(0, math.min(c, free))) - 1
    local tenant_cap = tonumber(a[9])
    if waves == 0 and tenant_cap > 0 and tonumber(t[4] or "0") + queued >= tenant_cap then live = -1 end
    limit = math.min(limit or live, live)
  end
  if limit and position > limit then return {E.too_far, position} end

  -- numbers the caller sent are stored as it wrote them: no conversion back to a string
  redis.call("HSET", jk, "id", id, "status", "queued", "route", route, "score", score, "vs", start, "created", a[3],
    "attempt", "0", "spent", "0", "req", req, unpack(a, 22))
  for digest in string.gmatch(a[16], "%S+") do redis.call("HINCRBY", key("cas", "live"), digest, 1) end
  -- the tenant's fair-share record: its new virtual finish time, weight and running limit (its weight
  -- in W changes with it while it is active)
  redis.call("HSET", tk, "F", finish, "w", a[8], "cap", a[9])
  if t[3] and tonumber(t[3]) ~= weight then
    redis.call("HINCRBY", key("fair"), "W", weight - tonumber(t[3]))
    redis.call("HSET", tk, "aw", weight)
  end
  local first_of_route = queue_join(id, score, route, nil, cust, a[14], tier)
  if ttl_at > 0 and a[6] == "1" then redis.call("ZADD", key("q", "ttl"), a[4], id) end
  -- No event is stored at admission: the position is live state (SSE reads and sends it), and an
  -- event list per queued job would cost more memory than the job itself.
  -- Wake the dispatchers when the job may start at once; otherwise they are busy or will find it on
  -- their next pass (a slot freeing up, or their periodic pass). The message names the admission: a
  -- worker whose api role told it of this job already ran its pass (core/head-signal.ts).
  if position == 0 or first_of_route then redis.call("PUBLISH", key("ch", "wake"), id .. " admitted") end
  return {position}
end

if #ARGV < 4 or (#ARGV - 1) % 3 ~= 0 then
  return redis.error_reply("admit: three arguments per job")
end
-- Every job's figures decoded and their numbers checked before the first write.
local NUMBERS = {2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 17, 18, 20}
local figures = {}
for i = 4, #ARGV, 3 do
  local a = cjson.decode(ARGV[i])
  for _, n in ipairs(NUMBERS) do
    if tonumber(a[n]) == nil then return redis.error_reply("admit: figure " .. n .. " is no number") end
  end
  figures[#figures + 1] = a
end
local replies = {}
for j = 1, #figures do
  local r = admit_one(ARGV[3 * j - 1], ARGV[3 * j], figures[j])
  replies[2 * j - 1] = r[1]
  replies[2 * j] = r[2] or -1
end
return replies
