-- flags: no-writes
-- stats: Reads only. Returns {users online, sockets on live instances, rooms, live instances}.
-- The counters are kept by the functions that change state (lib.lua); sockets cost a SCARD and
-- a GET per live instance.
local online = tonumber(redis.call('GET', K_N_ONLINE) or '0')
local rooms = tonumber(redis.call('GET', K_N_ROOMS) or '0')
local insts = redis.call('ZRANGEBYSCORE', K_INSTANCES, '(' .. num(now()), '+inf')
local socks = 0
for _, i in ipairs(insts) do socks = socks + inst_socks(i) end
return {math.max(online, 0), socks, math.max(rooms, 0), #insts}
