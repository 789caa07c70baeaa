-- status_set(sid, user, status?, metadata?): args[10..13]; '' means not given (kept as it is).
-- Returns 0, ERR_NO_SOCKET for an unknown socket, or ERR_STALE.
local sid, u, st, m = args[10], args[11], opt(args[12]), opt(args[13])
local rec = user_load(u)
if stale() then return ERR_STALE end
local s = sock_find(rec, sid)
if not s or s.i ~= INST then return ERR_NO_SOCKET end
-- Turning invisible: lastSeen is this moment, then stays; turning visible: it moves again. Taken
-- after the update's append, whose id gives the moment.
local was_visible = rec.st ~= 'invisible'
apply_status(rec, st, m)
if was_visible then rec.ls = now_ms() else mark_seen(rec) end
user_save(rec)
return 0
