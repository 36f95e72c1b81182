--[[
  Settles an admission whose outcome the caller does not know (the admit call was sent, and its reply
  timed out or the connection dropped): either the admit ran and the job exists, or it did not and now
  never will — the void marker written here, a hash {id, void} in the job's own key (kept for the
  given lifetime), makes a late delivery of that admit store nothing (admit.lua's HSETNX finds the key
  taken and sees the marker; the happy path pays nothing for it). Whichever of the two reaches Redis
  first decides; both are atomic. Readers treat a key without `status` as no job.

  ARGV[1] prefix  ARGV[2] job id  ARGV[3] customer  ARGV[4] lifetime of the void marker (s)
  Returns { 1, position }  the job was admitted (position -1 when it is no longer queued)
  { 0 }   it was not admitted, and a late admit of this id will be refused
  { E.foreign }  a job with this id exists and belongs to another customer
]]
local id = ARGV[2]
local jk = key("job", id)
local f = redis.call("HMGET", jk, "status", "cust", "void")
if f[3] then return {0} end
if f[1] then
  if f[2] ~= ARGV[3] then return {E.foreign} end
  return {1, redis.call("ZRANK", key("q"), id) or -1}
end
redis.call("HSET", jk, "id", id, "void", "1")
redis.call("EXPIRE", jk, tonumber(ARGV[4]))
return {0}
