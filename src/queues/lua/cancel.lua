--[[
  Cancels a job for its owner (or an admin). Queued: taken out of the queue, cancelled, never
  billed. Running: cancelled at once and the worker running it is told on the cancel channel to
  abort the backend call (renewal tells it too, should the message be missed); that worker
  releases the lease when it settles, or the lease expires.

  ARGV[1] prefix  ARGV[2] job id  ARGV[3] customer ("" = admin)  ARGV[4] now (ms)
  ARGV[5] retention seconds  ARGV[6] retention count
  Returns 1 was queued (now cancelled), 2 was running (abort requested)
  E.missing no such job for this customer  E.terminal already terminal
]]
local id = ARGV[2]
local customer = ARGV[3]
local now = tonumber(ARGV[4])
local retention_s = tonumber(ARGV[5])
local retention_count = tonumber(ARGV[6])
local jk = key("job", id)

local f = redis.call("HMGET", jk, "status", "cust")
local status = f[1]
if not status or (customer ~= "" and customer ~= f[2]) then return E.missing end

if status == "queued" then
  queue_leave(id)
  terminate(id, "cancelled", now, "cancelled", "cancelled by the client", false, retention_s, retention_count)
  return 1
end
if status == "running" then
  terminate(id, "cancelled", now, "cancelled", "cancelled by the client", false, retention_s, retention_count)
  redis.call("PUBLISH", key("ch", "cancel"), id)
  return 2
end
return E.terminal
