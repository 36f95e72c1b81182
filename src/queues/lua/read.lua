--[[
  Reads a job with its current position in one step (so status and position agree).

  ARGV[1] prefix  ARGV[2] job id
  Returns { flat HGETALL of the job, position (-1 when not queued), held (1 when it waits only for its
  tenant's running-at-once limit, else 0) } or {} when there is no such job
]]
local id = ARGV[2]
local jk = key("job", id)
local h = redis.call("HGETALL", jk)
if #h == 0 then return {} end
local position = -1
local held = 0
local status, cust = nil, nil
for i = 1, #h, 2 do
  if h[i] == "status" then status = h[i + 1] end
  if h[i] == "cust" then cust = h[i + 1] end
end
-- a key without status is the void marker of an admission that never happened (admit_resolve.lua)
if not status then return {} end
if status == "queued" then
  position = redis.call("ZRANK", key("q"), id) or -1
  if cust and redis.call("ZSCORE", key("q", "held", cust), id) then held = 1 end
end
return {h, position, held}
