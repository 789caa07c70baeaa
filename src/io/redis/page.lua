-- room_page(room, cursor, limit): ARGV[10..12]. Reads only. The users with a live socket in the
-- room whose id sorts after `cursor` ('' for the first page), at most `limit`.
-- Returns {total, next cursor ('' on the last page), user...}. Paging by user id keeps pages
-- disjoint and stable while sockets come and go, which HSCAN cursors over sockets would not.
local cursor, limit = ARGV[11], tonumber(ARGV[12])
local all = live_members(ARGV[10])
local users = {}
for _, u in ipairs(all) do
    if cursor == '' or u > cursor then users[#users + 1] = u end
end
local out = {#all, ''}
for n = 1, math.min(#users, limit) do out[#out + 1] = users[n] end
if #users >= limit and limit > 0 then out[2] = users[limit] end
return out
