--[[
  Releases an idempotency reservation after an admission that surely created no job (refused before
  the admit was sent, or refused by it), so the client may retry with the key at once. Only the
  reservation of that very admission is removed: one taken over by a later request, or one holding a
  response, stays.

  ARGV[1] prefix  ARGV[2] customer  ARGV[3] sha-256 (hex) of the key  ARGV[4] job id
  Returns 1 released, 0 not this admission's reservation
]]
local k = key("idem", ARGV[2], ARGV[3])
local raw = redis.call("GET", k)
if not raw then return 0 end
local held = cjson.decode(raw)
if held.response or held.job ~= ARGV[4] then return 0 end
redis.call("DEL", k)
return 1
