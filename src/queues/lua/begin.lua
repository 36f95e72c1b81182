--[[
  Begins the attempt a worker was handed: only the holder of the job's current token may start it,
  and only once. Marks the job running, opens an attempt in the attempt log, renews the lease and
  records the `started` event. A job whose ttl passed while it was dispatched is cancelled instead.

  ARGV[1] prefix  ARGV[2] job id  ARGV[3] token  ARGV[4] now (ms)  ARGV[5] lease ttl (ms)
  ARGV[6] retention seconds  ARGV[7] retention count
  Returns { 1, attempt, backend, modality, family, model, task, format, seed, request JSON, spent }
  -1 no such job  -2 the token is not the job's current one (stale or already begun)
  -3 ttl expired (the job is now cancelled)  -4 the job was cancelled
]]
local id = ARGV[2]
local token = ARGV[3]
local now = tonumber(ARGV[4])
local lease_ttl = tonumber(ARGV[5])
local jk = key("job", id)

local status = redis.call("HGET", jk, "status")
if not status then return {-1} end
if status == "cancelled" then return {-4} end
if status ~= "dispatched" or redis.call("HGET", jk, "token") ~= token then return {-2} end

local backend = redis.call("HGET", jk, "backend")
local lease_key = key("lease", backend)
local member = id .. "|" .. token
redis.call("DECR", key("dispatched"))

local ttl_at = tonumber(redis.call("HGET", jk, "ttl_at") or "0")
if ttl_at > 0 and now > ttl_at then
  redis.call("ZREM", lease_key, member)
  terminate(id, "cancelled", now, "ttl_expired", "not started within its ttl", false, tonumber(ARGV[6]),
    tonumber(ARGV[7]))
  return {-3}
end

redis.call("ZADD", lease_key, "XX", now + lease_ttl, member)
redis.call("ZREM", key("q", "ttl"), id)
local attempt = redis.call("HINCRBY", jk, "attempt", 1)
local log = cjson.decode(redis.call("HGET", jk, "alog") or "[]")
log[#log + 1] = {attempt = attempt, backend = backend, started_at = now}
redis.call("HSET", jk, "status", "running", "alog", json_array(log), "progress", "0")
if not redis.call("HGET", jk, "started") then redis.call("HSET", jk, "started", now) end
add_event(id, "started", cjson.encode({backend = backend, attempt = attempt}))

local f = redis.call("HMGET", jk, "mod", "fam", "mdl", "task", "fmt", "seed", "req", "spent")
return {1, attempt, backend, f[1], f[2], f[3], f[4], f[5], f[6], f[7], tonumber(f[8] or "0")}
