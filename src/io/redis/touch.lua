-- touch(sid): ARGV[8]. Returns 0, or ERR_NO_SOCKET for an unknown socket.
local u = redis.call('HGET', k_inst(INST), ARGV[8])
if not u then return ERR_NO_SOCKET end
mark_seen(k_user(u))
return 0
