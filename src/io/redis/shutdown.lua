-- shutdown: close every socket of this instance as socket_close(sid, graceful = false) and
-- release the lease. Returns the number of sockets closed.
local ki = k_inst(INST)
local flat = redis.call('HGETALL', ki)
for n = 1, #flat, 2 do
    local u = flat[n + 1]
    purge_dead(u)
    close_socket(u, flat[n], INST, false)
end
redis.call('DEL', ki)
redis.call('ZREM', K_INSTANCES, INST)
return #flat / 2
