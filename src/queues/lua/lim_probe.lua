--[[
  The sweeper's look at ledger entries of this pool's jobs (docs/decisions.md "Pools"): for each, is
  the place or permit the job's now, not begun yet, or over — and, when over, fenced so that the pool
  step it was taken for can never happen late: a job id whose admission never arrived gets the void
  marker of admit_resolve.lua (a late admit of it stores nothing); a permit never applied gets the
  job's fence `rfence` raised to its number (lim_grant.lua applies only permits above it). A place
  taken for the requeue after attempt `<id>|<token>` needs no fence: only that attempt's settle or
  reap puts the job back with it, and neither does once the job's token is another.

  ARGV[1] prefix  ARGV[2] lifetime of a void marker (s)  ARGV[3..] entries "<q|r>\t<customer>\t<member>"
  Returns one code per entry: 0 over (release it), 1 not begun yet (its attempt runs: look again
  later), 2 the job's (its end will be reported in lim:gone)
]]
local void_ttl = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local kind, cust, member = string.match(ARGV[i], "^(%a)\t([^\t]+)\t(.+)$")
  local code = 0
  if kind == "q" then
    local id, token = attempt_parts(member)
    if not id then id = member end
    local jk = key("job", id)
    local f = redis.call("HMGET", jk, "status", "cust", "void", "qres", "token")
    if not f[1] then
      if not f[3] and not token then
        redis.call("HSET", jk, "id", id, "void", "1")
        redis.call("EXPIRE", jk, void_ttl)
      end
    elseif f[2] == cust then
      -- (a field Redis does not have comes as false)
      if f[1] == "queued" and (f[4] or nil) == (token and member or nil) then
        code = 2
      elseif token and f[1] == "running" and f[5] == token then
        code = 1
      end
    end
  elseif kind == "r" then
    local id, n = string.match(member, "^(.+)@(%d+)$")
    if id then
      local jk = key("job", id)
      local f = redis.call("HMGET", jk, "rperm", "rfence", "status")
      if f[1] == member then
        code = 2
      elseif f[3] and tonumber(f[2] or "0") < tonumber(n) then
        redis.call("HSET", jk, "rfence", n)
      end
    end
  end
  out[#out + 1] = code
end
return out
