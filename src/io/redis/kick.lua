-- user_disconnect(user): args[10]. Appends the disconnect control entry that every instance's
-- reader sees; each closes its own sockets of the user. Returns 0.
emit({u = args[10]}, 'disconnect', {})
return 0
