-- flags: no-writes
-- room_members(room): args[10]. Reads only. A room snapshot: the id of the newest event (which
-- the answer reflects), then the records of the users with a socket in the room, sorted by id:
-- id, record (false: none).
local out = {last_event_id()}
local users = redis.call('ZRANGE', k_room(args[10]), 0, -1)
if #users == 0 then return out end
local recs = redis.call('MGET', unpack((function()
    local keys = {}
    for n, u in ipairs(users) do keys[n] = k_user(u) end
    return keys
end)()))
for n, u in ipairs(users) do
    out[#out + 1] = u
    out[#out + 1] = recs[n]
end
return out
