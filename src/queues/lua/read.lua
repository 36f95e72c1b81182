--[[
  Reads a job with its current position in one step (so status and position agree).

  ARGV[1] prefix  ARGV[2] job id
  Returns { flat HGETALL of the job, position (-1 when not queued) } or {} when there is no such job
]]
local id = ARGV[2]
local jk = key("job", id)
local h = redis.call("HGETALL", jk)
if #h == 0 then return {} end
local position = -1
local status = nil
for i = 1, #h, 2 do
  if h[i] == "status" then
    status = h[i + 1]
    if status == "queued" then position = redis.call("ZRANK", key("q"), id) or -1 end
    break
  end
end
-- a key without status is the void marker of an admission that never happened (admit_resolve.lua)
if not status then return {} end
return {h, position}
