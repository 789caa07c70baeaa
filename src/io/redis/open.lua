-- socket_open(sid, user, status?, metadata?): args[10..13]; '' means not given.
-- Returns 0, ERR_EXISTS when the socket is already registered, or ERR_STALE.
local sid, u, st, m = args[10], args[11], opt(args[12]), opt(args[13])
local rec = user_load(u)
if stale() then return ERR_STALE end
if sock_find(rec, sid) then return ERR_EXISTS end
local before = #rec.socks
rec.socks[before + 1] = {sid = sid, i = INST, r = {}}
confirm_if_reconciling(sid)
inst_count(rec, INST, 1)
if before == 0 and not rec.g then
    rec.st, rec.m = st or 'online', m
    -- The event first: its append gives the moment (since), with no TIME.
    emit(rec, 'online', {s = sid, st = rec.st, m = m})
    set_online(rec)
elseif rec.g then
    -- Back within the grace window: no transition, the user never went offline.
    redis.call('ZREM', K_GRACE, u)
    rec.g = nil
    apply_status(rec, st, m)
else
    apply_status(rec, st, m)
end
mark_seen(rec)
user_save(rec)
return 0
