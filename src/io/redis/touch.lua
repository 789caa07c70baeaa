-- touch(sid): ARGV[10]. Returns 0, or -2 for an unknown socket.
if stale() then return R_STALE end
local u = redis.call('HGET', k_inst(INST), ARGV[10])
if not u then return -2 end
redis.call('HSET', k_user(u), 'ls', num(NOW))
return 0
