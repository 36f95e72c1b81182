--[[
  Publishes a signed checkpoint of the audit log (docs/decisions.md "Audit log: the appender"): the
  lock holder's checkpoint of a committed size becomes the latest one (what receipts carry) and joins
  the bounded list of recent ones. One that is not newer than the latest is left out.

  ARGV[1] prefix  ARGV[2] holder id  ARGV[3] fencing token  ARGV[4] the checkpoint's tree size
  ARGV[5] the signed checkpoint (JSON)  ARGV[6] how many recent checkpoints to keep
  Returns 1 published, 0 not newer than the latest, E.fenced (not the holder), E.moved (a size
  beyond the committed one)
]]
local owner, fence = ARGV[2], ARGV[3]
if redis.call("GET", key("audit", "lock")) ~= fence .. ":" .. owner then return E.fenced end
local tree_size = tonumber(ARGV[4])
if tree_size > tonumber(redis.call("GET", key("audit", "size")) or "0") then return E.moved end
local latest = redis.call("GET", key("audit", "cp"))
if latest and tonumber(cjson.decode(latest).tree_size) >= tree_size then return 0 end
redis.call("SET", key("audit", "cp"), ARGV[5])
redis.call("LPUSH", key("audit", "cps"), ARGV[5])
redis.call("LTRIM", key("audit", "cps"), 0, tonumber(ARGV[6]) - 1)
return 1
