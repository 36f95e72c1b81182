--[[
  The deployment-wide ledger: releases entries (the ends a pool reported, or leftovers the sweeper
  found). Idempotent: an entry released already changes nothing, so a report may be applied twice.
  Each tenant whose running permit was released is published on lim:ch, where every worker's broker
  listens (its held jobs may start now, in any pool).

  ARGV[1] prefix  ARGV[2..] entries "<q|r>\t<customer>\t<member>"
  Returns the number of entries released
]]
local led = key("lim", "led")
local counts = key("lim", "n")
local released = 0
local woken = {}
local function down(field)
  if redis.call("HINCRBY", counts, field, -1) <= 0 then redis.call("HDEL", counts, field) end
end
for i = 2, #ARGV do
  local kind, cust = string.match(ARGV[i], "^(%a)\t([^\t]+)\t")
  if kind and redis.call("ZREM", led, ARGV[i]) == 1 then
    down(kind .. ":" .. cust)
    if kind == "q" then down("q") end
    if kind == "r" and not woken[cust] then
      woken[cust] = true
      redis.call("PUBLISH", key("lim", "ch"), cust)
    end
    released = released + 1
  end
end
return released
