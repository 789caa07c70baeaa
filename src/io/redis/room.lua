-- room_query(room, limit): ARGV[10], ARGV[11] (0: all). Reads only.
-- Returns {total, user...}: the users with a live socket in the room, sorted, at most `limit`.
local limit = tonumber(ARGV[11])
local users = live_members(ARGV[10])
local out = {#users}
for n = 1, #users do
    if limit > 0 and n > limit then break end
    out[#out + 1] = users[n]
end
return out
