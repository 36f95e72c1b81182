--[[
  Starts the next attempts for a worker with free slots (see dispatch_jobs in lib_dispatch.lua): each takes
  the next job in the global order that a backend with a free slot serves, leases that slot (a
  member "<job id>|<token>" of the backend's lease set, scored by its expiry, renewed while the
  attempt runs) and marks the job running under the new token.

  ARGV[1] prefix  ARGV[2] now (ms)  ARGV[3] free worker slots of the caller
  ARGV[4] backends: JSON array of {id, cap, engine, models (array, "*" = all), ok (bool)}
  ARGV[5] lease ttl (ms)  ARGV[6] token base (unique per call)
  ARGV[7] retention seconds  ARGV[8] retention count
  ARGV[9] preferred engine per "family/model" (JSON object; the catalogue's default backend)
  A call is answered from its kept reply when its token base was seen within a minute (a resend).
  Returns a flat array: for each attempt, a JSON object {id, token, backend, route, attempt,
  modality, family, model, task, seed, spent}, then its request (JSON)
]]
local again = replayed(ARGV[6])
if again then return again end
return remember_reply(ARGV[6], dispatch_jobs(tonumber(ARGV[2]), tonumber(ARGV[3]), cjson.decode(ARGV[4]),
  cjson.decode(ARGV[9]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])))
