-- room_members(room): ARGV[10]. Reads only. A room snapshot: the id of the newest event (which
-- the answer reflects), then for each user with a live socket in the room, sorted: id, status
-- ('' for the default), metadata ('' if none).
local out = {last_event_id()}
for _, u in ipairs(live_members(ARGV[10])) do
    local r = redis.call('HMGET', k_user(u), 'st', 'm')
    out[#out + 1] = u
    out[#out + 1] = r[1] or ''
    out[#out + 1] = r[2] or ''
end
return out
