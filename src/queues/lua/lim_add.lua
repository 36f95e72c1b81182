--[[
  The deployment-wide ledger: adds entries without a limit check, before the pool step that may need
  them (a job put back in the queue after an attempt: a retry, a busy hand-back, a lost worker, which
  are never refused, as in a single pool). An entry held already is kept as it is.

  ARGV[1] prefix  ARGV[2] now (ms)  ARGV[3..] entries "<q|r>\t<customer>\t<member>"
  Returns the number of entries added
]]
local led = key("lim", "led")
local counts = key("lim", "n")
local now = tonumber(ARGV[2])
local added = 0
for i = 3, #ARGV do
  local kind, cust = string.match(ARGV[i], "^(%a)\t([^\t]+)\t")
  if kind and redis.call("ZADD", led, "NX", now, ARGV[i]) == 1 then
    redis.call("HINCRBY", counts, kind .. ":" .. cust, 1)
    if kind == "q" then redis.call("HINCRBY", counts, "q", 1) end
    added = added + 1
  end
end
return added
