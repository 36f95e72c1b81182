--[[
  Takes or renews a WebSocket connection's lease in its customer's set (src/queues/ws-leases.ts): the
  per-tenant connection limit across API processes. Members are connection ids scored by the expiry
  of their lease (ms); an API process renews its connections' leases, so those of a process that died
  lapse by themselves. Lapsed members are dropped before counting.

  ARGV[1] prefix  ARGV[2] customer  ARGV[3] connection id  ARGV[4] now (ms)  ARGV[5] lease (ms)
  ARGV[6] limit (live connections of the customer at most, this one included)
  Returns {1, live} held (taken, or renewed while it was still held), {0, live} refused: the customer
  holds `limit` live connections already (`live`: their number, this one included when held)
]]
local k = key("ws", ARGV[2])
local now = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
redis.call("ZREMRANGEBYSCORE", k, "-inf", now)
local held = redis.call("ZSCORE", k, ARGV[3])
local live = redis.call("ZCARD", k)
if not held and live >= tonumber(ARGV[6]) then return {0, live} end
redis.call("ZADD", k, now + lease, ARGV[3])
-- every member lapses within one lease of now, so the set may go with them
redis.call("PEXPIRE", k, lease)
if held then return {1, live} end
return {1, live + 1}
