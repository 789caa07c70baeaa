-- user_disconnect(user): ARGV[8]. Appends the disconnect control entry that every instance's
-- reader sees; each closes its own sockets of the user. Returns 0.
emit('disconnect', ARGV[8], {})
return 0
