-- flags: no-writes
-- stats: Reads only. Returns {users online, sockets on live instances, rooms, live instances}.
-- The counters are kept by the functions that change state (lib.lua): users online cost a SCARD
-- per instance not yet reaped, sockets a SCARD and a GET per live instance.
local rooms = tonumber(redis.call('GET', K_N_ROOMS) or '0')
local t = now()
local all = redis.call('ZRANGE', K_INSTANCES, 0, -1, 'WITHSCORES')
local insts, live = {}, {}
for n = 1, #all, 2 do
    insts[#insts + 1] = all[n]
    if tonumber(all[n + 1]) > t then live[#live + 1] = all[n] end
end
local online = online_users(insts)
local socks = 0
for _, i in ipairs(live) do socks = socks + inst_socks(i) end
return {math.max(online, 0), socks, math.max(rooms, 0), #live}
