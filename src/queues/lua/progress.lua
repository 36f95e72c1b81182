--[[
  Records progress reported by the backend for the current attempt (and an optional preview frame).

  ARGV[1] prefix  ARGV[2] job id  ARGV[3] token  ARGV[4] progress (0..1)  ARGV[5] step  ARGV[6] steps
  ARGV[7] preview frame (data URI, "" = none)  ARGV[8] now (ms)
  Returns 1 recorded, 0 the attempt is no longer current (the caller should abort)
]]
local id = ARGV[2]
local now = tonumber(ARGV[8])
local jk = key("job", id)
local f = redis.call("HMGET", jk, "status", "token")
if f[1] ~= "running" or f[2] ~= ARGV[3] then return 0 end
redis.call("HSET", jk, "progress", ARGV[4])
add_event(id, "progress", cjson.encode({progress = tonumber(ARGV[4]), step = tonumber(ARGV[5]),
  steps = tonumber(ARGV[6])}), now)
if ARGV[7] ~= "" then add_event(id, "preview", cjson.encode({frame = ARGV[7]}), now) end
return 1
