-- flags: no-writes
-- room_query(room, limit): args[10], args[11] (0: all). Reads only.
-- Returns {total, user...}: the users with a socket in the room, sorted, at most `limit`.
local kr = k_room(args[10])
local limit = tonumber(args[11])
local out = {redis.call('ZCARD', kr)}
if out[1] == 0 then return out end
for _, u in ipairs(redis.call('ZRANGE', kr, 0, limit > 0 and limit - 1 or -1)) do
    out[#out + 1] = u
end
return out
