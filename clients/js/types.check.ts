// Compiled (never run) by `npm run typecheck`: the declarations describe the module as it is used.
import { io } from 'socket.io-client';
import { presence, compareSeq, type PresenceUser } from 'presenced-client';

const socket = io('http://127.0.0.1:3000', { auth: { userId: 'alice' } });
const p = presence(socket, { room: 'doc-42', batchMs: 100, idle: { after: 60_000 } });
const stop = p.on('join', (u: PresenceUser) => console.log(u.userId, u.status, u.metadata));
p.on('update', (u, prev) => console.log(u.status, prev.status));
p.on('sync', (users) => console.log(users.length));
p.on('error', (e) => console.log(e.code));
stop();
const who: PresenceUser | undefined = p.get('bob');
void p.setStatus('busy', { note: 'in a call' }).then(() => p.list());
void p.ready;
const contacts = presence(socket, { userIds: ['bob', 'carol'] });
console.log(who, contacts.synced, contacts.seq, p.idle, compareSeq('1-0', '2'));
contacts.close();
// @ts-expect-error: a view is of a room or of a list, not both
presence(socket, { room: 'x', userIds: ['y'] });
// @ts-expect-error: not a status
void p.setStatus('gone');
