--[[
  Records a job's ledger entry in the customer's usage totals, once per job id (docs/decisions.md
  "Billing"): the job's marker goes from absent or "pending" (its ledger line is being written) to
  "done" with the counts, in one step; a second call for the same job changes nothing.

  ARGV[1] prefix  ARGV[2] job id  ARGV[3] customer  ARGV[4] UTC day (YYYY-MM-DD)  ARGV[5] the counts'
  field prefix (keys.ts usageField without its kind letter)  ARGV[6] GPU ms  ARGV[7] cost (micro-USD)
  ARGV[8] marker lifetime (s)  ARGV[9] usage lifetime (s)
  Returns 1 recorded now, 0 recorded before
]]
local mk = key("billed", ARGV[2])
if redis.call("GET", mk) == "done" then return 0 end
redis.call("SET", mk, "done", "EX", tonumber(ARGV[8]))
local uk = key("usage", ARGV[3], ARGV[4])
local field = ARGV[5]
redis.call("HINCRBY", uk, field .. "j", 1)
-- the figures as the caller wrote them (integers): tonumber would turn 10^17 into "1e+17"
redis.call("HINCRBY", uk, field .. "g", ARGV[6])
redis.call("HINCRBY", uk, field .. "c", ARGV[7])
redis.call("EXPIRE", uk, tonumber(ARGV[9]))
return 1
