-- room_page(room, cursor, limit): ARGV[10..12]. Reads only. The users with a live socket in the
-- room whose id sorts after `cursor` ('' for the first page), at most `limit`.
-- Returns {total, next cursor ('' on the last page), user...}. A room hash holds one field per
-- socket, so members are deduplicated and sorted here: paging by user id keeps pages disjoint
-- and stable while sockets come and go, which HSCAN cursors over sockets would not.
local cursor, limit = ARGV[11], tonumber(ARGV[12])
local flat = redis.call('HGETALL', k_room(ARGV[10]))
local seen, users, total = {}, {}, 0
for n = 1, #flat, 2 do
    local v = flat[n + 1]
    local c = string.find(v, ':', 1, true)
    if c then
        local i, u = string.sub(v, 1, c - 1), string.sub(v, c + 1)
        if not seen[u] and live(i) then
            seen[u] = true
            total = total + 1
            if cursor == '' or u > cursor then users[#users + 1] = u end
        end
    end
end
table.sort(users)
local out = {total, ''}
for n = 1, math.min(#users, limit) do out[#out + 1] = users[n] end
if #users >= limit and limit > 0 then out[2] = users[limit] end
return out
