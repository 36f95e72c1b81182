--[[
  Admits a job: stores its record, places it in the global order (position) and in its route's
  dispatch set, and wakes the dispatchers when it can start at once (nothing ahead, or the first job
  of its route). One atomic step: the arguments are decoded before anything is written, so a job is
  either fully admitted or not at all.

  The order key (lib.lua order_key) is class * 2^40 + admission sequence: strict priority classes,
  FIFO inside a class. A fair scheduler replaces only this score; positions are read the same way
  (ZRANK of the order).

  ARGV[1] prefix            ARGV[2] job id          ARGV[3] route ("family/model" or "family/model@backend")
  ARGV[4] class (0 high, 1 normal, 2 low)           ARGV[5] now (ms)
  ARGV[6] ttl deadline (ms, 0 = none)               ARGV[7] highest position admitted (-1 = no limit)
  ARGV[8] stored fields (JSON object of strings; one argument costs the caller far less than one per
  field; `inputs`, the space-separated CAS digests of its input images, also takes a reference on
  each, see lib.lua release_objects)  ARGV[9] the request (JSON, stored as the field `req` as it is)
  ARGV[10] "1" when the client sent the ttl (indexed in the ttl set), "0" for the default ttl (stored
  as ttl_def and found by expire.lua's scan of each class's oldest jobs: no index to keep per job)
  Returns { position } (the caller derives the ETA from it)
  { E.exists }  a job with this id exists
  { E.too_far, position }  it could not start within the caller's limit; nothing was stored
  { E.resent, position }  this very admission was stored already (same id, admission time and
                    customer: Redis ran it, the reply was lost and the client resent it); position -1
                    when it is no longer queued
  { E.voided }  this id was voided (admit_resolve.lua settled a lost admission as "not admitted" and
          left a marker in the job's key): a late delivery of this call stores nothing
]]
local id = ARGV[2]
local route = ARGV[3]
local class = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local ttl_at = tonumber(ARGV[6])
local max_position = tonumber(ARGV[7])
local ttl_field = ARGV[10] == "0" and "ttl_def" or "ttl_at"
local jk = key("job", id)

local seq = redis.call("INCR", key("q", "seq"))
local score = order_key(class, seq)
local position = redis.call("ZCOUNT", key("q"), "-inf", "(" .. score)
if max_position >= 0 and position > max_position then return {E.too_far, position} end

local fields = cjson.decode(ARGV[8])
if redis.call("HSETNX", jk, "id", id) == 0 then
  local f = redis.call("HMGET", jk, "created", "cust", "void")
  if f[3] then return {E.voided} end
  if tonumber(f[1]) == now and (f[2] or nil) == fields.cust then
    return {E.resent, redis.call("ZRANK", key("q"), id) or -1}
  end
  return {E.exists}
end
local args = {"status", "queued", "route", route, "score", score, "created", now, "attempt", 0, "spent", 0,
  "req", ARGV[9]}
for k, v in pairs(fields) do
  args[#args + 1] = k
  args[#args + 1] = v
end
if ttl_at > 0 then
  args[#args + 1] = ttl_field
  args[#args + 1] = ttl_at
end
redis.call("HSET", jk, unpack(args))
if fields.inputs then
  for digest in string.gmatch(fields.inputs, "%S+") do redis.call("HINCRBY", key("cas", "live"), digest, 1) end
end
queue_join(id, score, route, nil)
local first_of_route = redis.call("ZCARD", key("q", "r", route)) == 1
if ttl_at > 0 and ttl_field == "ttl_at" then redis.call("ZADD", key("q", "ttl"), ttl_at, id) end
-- No event is stored at admission: the position is live state (SSE reads and sends it), and an
-- event list per queued job would cost more memory than the job itself.
-- Wake the dispatchers when the job may start at once; otherwise they are busy or will find it on
-- their next pass (a slot freeing up, or their periodic pass).
if position == 0 or first_of_route then redis.call("PUBLISH", key("ch", "wake"), id) end
return {position}
