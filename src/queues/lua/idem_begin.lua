--[[
  Reserves an idempotency key (API.md §3) for an admission, or says what holds it, in one step.

  A reservation names the job id its admission will use and the time `until` (ms) by which that
  admission has been sent or given up. While it holds, a second request with the key is told to wait
  (409). Past `until` with no stored response, the reservation is settled here instead of blocking
  the key: the job exists (the earlier admission went through, only its answer was lost: replay it)
  or it is voided as in admit_resolve.lua (a late admit of that id stores nothing) and this request
  takes the key over. So a key is never released while its job may still come to exist.

  ARGV[1] prefix  ARGV[2] customer  ARGV[3] sha-256 (hex) of the key  ARGV[4] body fingerprint
  ARGV[5] job id this request will admit  ARGV[6] now (ms)  ARGV[7] until (ms)
  ARGV[8] lifetime of the key (s)  ARGV[9] lifetime of a void marker (s)
  Returns { "reserved" }  the key is this request's
  { "replay", stored }   a response is stored (the stored JSON {fp, response})
  { "admitted", id }     no response stored, but the earlier request's job exists
  { "mismatch" }         the key was used with another body
  { "pending", until }   the earlier request may still be admitting (until when)
]]
local customer = ARGV[2]
local k = key("idem", customer, ARGV[3])
local fp = ARGV[4]
local now = tonumber(ARGV[6])
local mine = cjson.encode({fp = fp, job = ARGV[5], ["until"] = tonumber(ARGV[7])})
local raw = redis.call("GET", k)
if not raw then
  redis.call("SET", k, mine, "EX", tonumber(ARGV[8]))
  return {"reserved"}
end
local held = cjson.decode(raw)
if held.fp ~= fp then return {"mismatch"} end
if held.response then return {"replay", raw} end
if now < (tonumber(held["until"]) or 0) then return {"pending", tostring(held["until"])} end
local job = held.job
if job then
  local jk = key("job", job)
  local f = redis.call("HMGET", jk, "status", "cust", "void")
  if f[1] and f[2] == customer then return {"admitted", job} end
  if not f[1] and not f[3] then
    -- the void marker of admit_resolve.lua: a late admit of that id stores nothing
    redis.call("HSET", jk, "id", job, "void", "1")
    redis.call("EXPIRE", jk, tonumber(ARGV[9]))
  end
end
redis.call("SET", k, mine, "EX", tonumber(ARGV[8]))
return {"reserved"}
