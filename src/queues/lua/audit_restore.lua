--[[
  Puts leaves the files under DATA_DIR/audit hold, and Redis lost, back into the audit log
  (docs/decisions.md "Audit log: the appender": Redis restarted from an AOF that missed its last
  writes). Like audit_commit.lua, all or nothing, for the lock holder at the size it expects, within
  one segment; but the records come from the segment's blob, not from the staged ones: a record of
  them that is staged (again) is unstaged, and a job already in the log refuses the whole call.

  ARGV[1] prefix  ARGV[2] holder id  ARGV[3] fencing token  ARGV[4] expected size
  ARGV[5] segment size S  ARGV[6] the segment's blob digest (holding these leaves)  ARGV[7] the
  segment's hex root when this fills it, else ""  ARGV[8..] pairs: job id, canonical record
  Returns the new size, or E.fenced, E.moved, E.appended (a job of them is in the log already)
]]
local owner, fence = ARGV[2], ARGV[3]
if redis.call("GET", key("audit", "lock")) ~= fence .. ":" .. owner then return E.fenced end
if redis.call("GET", key("audit", "fence")) ~= fence then return E.fenced end
local size = tonumber(redis.call("GET", key("audit", "size")) or "0")
if size ~= tonumber(ARGV[4]) then return E.moved end
local S = tonumber(ARGV[5])
local digest, root = ARGV[6], ARGV[7]
local ids, records = {}, {}
for i = 8, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  records[#records + 1] = ARGV[i + 1]
end
local n = #ids
local k = math.floor(size / S)
local new_size = size + n
if n == 0 or new_size > (k + 1) * S or ((new_size == (k + 1) * S) ~= (root ~= "")) then
  return redis.error_reply("audit_restore: bad batch")
end
if redis.call("LLEN", key("audit", "roots")) ~= k then return E.moved end
local segs = redis.call("LLEN", key("audit", "segs"))
if segs ~= k and segs ~= k + 1 then return E.moved end
local known = redis.call("HMGET", key("audit", "leaf"), unpack(ids))
local leaves = {}
for i = 1, n do
  if known[i] then return E.appended end
  leaves[#leaves + 1] = ids[i]
  leaves[#leaves + 1] = size + i - 1
end

redis.call("HSET", key("audit", "leaf"), unpack(leaves))
for i = 1, n do
  if redis.call("HDEL", key("audit", "staged"), ids[i]) == 1 then
    redis.call("LREM", key("audit", "staged", "order"), 1, ids[i])
  end
end
if root ~= "" then
  redis.call("DEL", key("audit", "tail"))
  redis.call("RPUSH", key("audit", "roots"), root)
else
  redis.call("RPUSH", key("audit", "tail"), unpack(records))
end
if segs == k then
  redis.call("RPUSH", key("audit", "segs"), digest)
else
  local previous = redis.call("LINDEX", key("audit", "segs"), k)
  redis.call("LSET", key("audit", "segs"), k, digest)
  if previous ~= digest then redis.call("SREM", key("audit", "blobs"), previous) end
end
redis.call("SADD", key("audit", "blobs"), digest)
redis.call("SET", key("audit", "size"), new_size)
return new_size
