// Signs the token a browser connects with when presenced runs with auth = jwt and jwt_secret
// (HS256; docs/security.md). Your backend calls it once it knows who the user is; the page
// passes the token as io(url, { auth: { token } }). Node.js built-ins only.
//
//   import { signToken } from './sign-token.mjs';
//   const token = signToken(process.env.PRESENCED_JWT_SECRET, {
//       sub: user.id,                                   // the user id others see
//       presence: { name: user.name, avatar: user.avatar }, // the metadata others see
//       rooms: [`doc:${documentId}`],                    // optional: the rooms it may join and read
//   });
import { createHmac } from 'node:crypto';

const b64url = (data) => Buffer.from(data).toString('base64url');

/**
 * An HS256 JSON Web Token for `claims`, valid for `ttlSeconds` (default 1 hour). presenced closes
 * the socket when it expires, unless the page sends presence:refresh with a new one.
 */
export function signToken(secret, claims, { ttlSeconds = 3600, now = Date.now() } = {}) {
    const iat = Math.floor(now / 1000);
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const payload = b64url(JSON.stringify({ iat, exp: iat + ttlSeconds, ...claims }));
    const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
    return `${header}.${payload}.${signature}`;
}

// As a command: node sign-token.mjs <user id> [name]   (secret in PRESENCED_JWT_SECRET)
if (import.meta.url === `file://${process.argv[1]}`) {
    const [sub, name] = process.argv.slice(2);
    if (!sub || !process.env.PRESENCED_JWT_SECRET) {
        console.error('usage: PRESENCED_JWT_SECRET=... node sign-token.mjs <user id> [name]');
        process.exit(2);
    }
    console.log(signToken(process.env.PRESENCED_JWT_SECRET, { sub, ...(name ? { presence: { name } } : {}) }));
}
