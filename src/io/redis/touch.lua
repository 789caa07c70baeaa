-- touch(sid): ARGV[10]. Returns 0, or ERR_NO_SOCKET for an unknown socket.
if stale() then return ERR_STALE end
local u = redis.call('HGET', k_inst(INST), ARGV[10])
if not u then return ERR_NO_SOCKET end
redis.call('HSET', k_user(u), 'ls', num(NOW))
return 0
