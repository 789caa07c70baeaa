-- socket_close(sid, graceful): ARGV[10], ARGV[11] ('1' graceful). Unknown sockets are fine.
-- Returns 0.
local sid, graceful = ARGV[10], ARGV[11] == '1'
if stale() then return ERR_STALE end
local u = redis.call('HGET', k_inst(INST), sid)
if not u then return 0 end
purge_dead(u)
close_socket(u, sid, INST, graceful)
return 0
