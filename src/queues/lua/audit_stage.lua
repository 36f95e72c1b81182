--[[
  Stages a finished job's audit record for the appender (docs/decisions.md "Audit log: the
  appender"): once per job id, whatever runs it again — a record staged already, or appended to the
  log already, is left as it is.

  ARGV[1] prefix  ARGV[2] job id  ARGV[3] the record's canonical JSON (RFC 8785)
  Returns 1 staged now, 0 staged or appended before
]]
local id = ARGV[2]
if redis.call("HEXISTS", key("audit", "leaf"), id) == 1 then return 0 end
if redis.call("HSETNX", key("audit", "staged"), id, ARGV[3]) == 0 then return 0 end
redis.call("RPUSH", key("audit", "staged", "order"), id)
return 1
