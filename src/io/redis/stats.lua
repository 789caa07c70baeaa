-- stats: Reads only. Returns {users online, sockets on live instances, rooms, live instances}.
-- The two counters are kept by the scripts that change state (lib.lua); sockets cost one HLEN
-- per live instance.
local online = tonumber(redis.call('GET', K_N_ONLINE) or '0')
local rooms = tonumber(redis.call('GET', K_N_ROOMS) or '0')
local insts = redis.call('ZRANGEBYSCORE', K_INSTANCES, '(' .. num(NOW), '+inf')
local socks = 0
for _, i in ipairs(insts) do socks = socks + redis.call('HLEN', k_inst(i)) end
return {math.max(online, 0), socks, math.max(rooms, 0), #insts}
