-- room_query(room, limit): ARGV[10], ARGV[11] (0: all). Reads only.
-- Returns {total, user...}: the users with a live socket in the room, sorted, at most `limit`.
local limit = tonumber(ARGV[11])
local flat = redis.call('HGETALL', k_room(ARGV[10]))
local seen, users = {}, {}
for n = 1, #flat, 2 do
    local v = flat[n + 1]
    local c = string.find(v, ':', 1, true)
    if c then
        local i, u = string.sub(v, 1, c - 1), string.sub(v, c + 1)
        if not seen[u] and live(i) then
            seen[u] = true
            users[#users + 1] = u
        end
    end
end
table.sort(users)
local out = {#users}
for n = 1, #users do
    if limit > 0 and n > limit then break end
    out[#out + 1] = users[n]
end
return out
