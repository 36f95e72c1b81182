--[[
  Lists a compliance report stored in the CAS (docs/decisions.md "Compliance"): its digest by
  generation time, its summary by digest; reports generated before the retention's start leave the
  list in the same step (a bounded number per call, so the list only holds current reports).

  ARGV[1] prefix  ARGV[2] digest  ARGV[3] generated (ms)  ARGV[4] summary JSON
  ARGV[5] keep since (ms): older reports are dropped  ARGV[6] most reports to drop in this call
  Returns the number of reports listed
]]
local listed = key("compliance", "reports")
local summaries = key("compliance", "summary")
redis.call("ZADD", listed, tonumber(ARGV[3]), ARGV[2])
redis.call("HSET", summaries, ARGV[2], ARGV[4])
local old = redis.call("ZRANGEBYSCORE", listed, "-inf", "(" .. ARGV[5], "LIMIT", 0, tonumber(ARGV[6]))
if #old > 0 then
  redis.call("ZREM", listed, unpack(old))
  redis.call("HDEL", summaries, unpack(old))
end
return redis.call("ZCARD", listed)
