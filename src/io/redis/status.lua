-- status_set(sid, status, metadata?): ARGV[10..12]; '' metadata means not given.
-- Returns 0, or ERR_NO_SOCKET for an unknown socket.
local sid, st, m = ARGV[10], ARGV[11], opt(ARGV[12])
if stale() then return ERR_STALE end
local u = redis.call('HGET', k_inst(INST), sid)
if not u then return ERR_NO_SOCKET end
redis.call('HSET', k_user(u), 'ls', num(NOW))
apply_status(u, st, m)
return 0
