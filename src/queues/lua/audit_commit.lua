--[[
  Appends the next staged records to the audit log, all or nothing (docs/decisions.md "Audit log:
  the appender"): the lock holder with this fencing token, at the size it expects, moves the first n
  staged records into the open segment — each job id gets the next leaf index, its record joins the
  tail — and names the segment's new blob (already in the CAS). When the segment is full it is
  sealed: its root is pushed and the tail emptied. The previous partial blob of the segment is no
  longer kept from the CAS collector; the new one is.

  ARGV[1] prefix  ARGV[2] holder id  ARGV[3] fencing token  ARGV[4] expected size
  ARGV[5] segment size S  ARGV[6] the segment's new blob digest  ARGV[7] the segment's hex root when
  this commit fills it, else ""  ARGV[8..] the job ids, in the order they are staged
  Returns the new size, or E.fenced (not the holder), E.moved (the size is not the expected one),
  E.unstaged (the ids are not the next staged ones, or one is appended already)
]]
local owner, fence = ARGV[2], ARGV[3]
if redis.call("GET", key("audit", "lock")) ~= fence .. ":" .. owner then return E.fenced end
if redis.call("GET", key("audit", "fence")) ~= fence then return E.fenced end
local size = tonumber(redis.call("GET", key("audit", "size")) or "0")
if size ~= tonumber(ARGV[4]) then return E.moved end
local S = tonumber(ARGV[5])
local digest, root = ARGV[6], ARGV[7]
local ids = {}
for i = 8, #ARGV do ids[#ids + 1] = ARGV[i] end
local n = #ids
local k = math.floor(size / S)
local new_size = size + n
-- a commit stays within one segment, and names a root exactly when it fills it
if n == 0 or new_size > (k + 1) * S or ((new_size == (k + 1) * S) ~= (root ~= "")) then
  return redis.error_reply("audit_commit: bad batch")
end
if redis.call("LLEN", key("audit", "roots")) ~= k then return E.moved end
local segs = redis.call("LLEN", key("audit", "segs"))
if segs ~= k and segs ~= k + 1 then return E.moved end

local order = redis.call("LRANGE", key("audit", "staged", "order"), 0, n - 1)
if #order ~= n then return E.unstaged end
for i = 1, n do
  if order[i] ~= ids[i] then return E.unstaged end
end
local records = redis.call("HMGET", key("audit", "staged"), unpack(ids))
local known = redis.call("HMGET", key("audit", "leaf"), unpack(ids))
local leaves = {}
for i = 1, n do
  if not records[i] or known[i] then return E.unstaged end
  leaves[#leaves + 1] = ids[i]
  leaves[#leaves + 1] = size + i - 1
end

redis.call("HSET", key("audit", "leaf"), unpack(leaves))
redis.call("HDEL", key("audit", "staged"), unpack(ids))
redis.call("LTRIM", key("audit", "staged", "order"), n, -1)
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
