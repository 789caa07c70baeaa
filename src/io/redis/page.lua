-- flags: no-writes
-- room_page(room, cursor, limit): args[10..12]. Reads only. The users with a socket in the room
-- whose id sorts after `cursor` ('' for the first page), at most `limit`.
-- Returns {total, next cursor ('' on the last page), user...}. Members all have score 0, so the
-- room's sorted set orders them bytewise: paging by user id keeps pages disjoint and stable
-- while users come and go, and a page costs O(log N + limit).
local kr, cursor, limit = k_room(args[10]), args[11], tonumber(args[12])
local out = {redis.call('ZCARD', kr), ''}
if out[1] == 0 or limit <= 0 then return out end
local users = redis.call('ZRANGEBYLEX', kr, cursor == '' and '-' or '(' .. cursor, '+', 'LIMIT', 0,
    limit)
for _, u in ipairs(users) do out[#out + 1] = u end
if #users >= limit then out[2] = users[limit] end
return out
