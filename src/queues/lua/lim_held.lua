--[[
  The broker's read (docs/decisions.md "Pools"): tenants of this pool whose jobs are held for want of
  a permit of the deployment-wide running limit (dispatch adds them to lim:wait), each with its limit
  and its first held jobs. A tenant with none held any more (or no such limit) leaves lim:wait.

  ARGV[1] prefix  ARGV[2] tenants at most  ARGV[3] jobs per tenant at most
  Returns JSON [{c: customer, l: limit, ids: [job ids, first in the order first]}]
]]
local out = {}
local wait = key("lim", "wait")
for _, cust in ipairs(redis.call("SRANDMEMBER", wait, tonumber(ARGV[2]))) do
  local cap = tonumber(redis.call("HGET", key("t", cust), "cap") or "0")
  local ids = {}
  if cap < 0 then ids = redis.call("ZRANGE", key("q", "held", cust), 0, tonumber(ARGV[3]) - 1) end
  if #ids == 0 then
    redis.call("SREM", wait, cust)
  else
    out[#out + 1] = {c = cust, l = -cap, ids = ids}
  end
end
return json_array(out)
