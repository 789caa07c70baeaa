// Checks HTTP answers against the OpenAPI document (docs/openapi.json): every answer the HTTP
// tests receive goes through checkAnswer(), so the document cannot drift from the daemon.
//   - a path the document describes: the status must be listed for the operation (or covered by
//     its `default`), the Content-Type must be one the document gives for it, and a JSON body
//     must match its schema (JSON Schema 2020-12, checked with Ajv);
//   - a method the path does not have, or a path the document does not describe (other than the
//     Engine.IO endpoint, which docs/protocol.md covers): a 4xx/5xx with the Error body.
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';

export const OPENAPI_PATH = new URL('../../../docs/openapi.json', import.meta.url).pathname;

let state;

function load() {
    if (state) return state;
    const doc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8'));
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    ajv.addSchema(doc, 'openapi');
    const routes = Object.keys(doc.paths).map((p) => ({
        template: p,
        exact: !p.includes('{'),
        re: new RegExp(`^${p.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}$`),
    }));
    // A literal path wins over a template (/v1/users/bulk over /v1/users/{userId}).
    routes.sort((a, b) => Number(b.exact) - Number(a.exact));
    state = { doc, ajv, routes, compiled: new Map() };
    return state;
}

const escape = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');

function resolve(doc, obj) {
    while (obj && obj.$ref) {
        obj = obj.$ref
            .slice(2)
            .split('/')
            .reduce((o, k) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    }
    return obj;
}

function validator(pointer) {
    const { ajv, compiled } = load();
    if (!compiled.has(pointer)) compiled.set(pointer, ajv.compile({ $ref: `openapi#${pointer}` }));
    return compiled.get(pointer);
}

const mediaType = (ct) => (ct ?? '').split(';').map((s) => s.trim().toLowerCase()).join('; ');

function checkError(what, status, contentType, text) {
    if (status < 400) throw new Error(`${what}: ${status} for a route or method the document does not have`);
    checkJson(what, '/components/schemas/Error', contentType, text);
}

function checkJson(what, pointer, contentType, text) {
    if (mediaType(contentType) !== 'application/json') {
        throw new Error(`${what}: Content-Type ${contentType}, the document says application/json`);
    }
    let body;
    try {
        body = JSON.parse(text);
    } catch {
        throw new Error(`${what}: the body is not JSON: ${text.slice(0, 200)}`);
    }
    const v = validator(pointer);
    if (!v(body)) {
        throw new Error(`${what}: the body does not match ${pointer}: ${JSON.stringify(v.errors)}\n${text.slice(0, 500)}`);
    }
}

/**
 * Throws unless the answer matches the document. `text` null: the body was not read (a stream).
 * Returns false for answers outside the document (the Engine.IO endpoint), true otherwise.
 */
export function checkAnswer({ method, url, status, contentType, text }) {
    const { doc, routes } = load();
    const path = new URL(url, 'http://x').pathname;
    if (path.startsWith('/socket.io/')) return false;
    const what = `${method} ${path} → ${status} (docs/openapi.json)`;
    const route = routes.find((r) => r.re.test(path));
    const m = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase();
    const op = route && doc.paths[route.template][m];
    if (!op) {
        if (text !== null && method.toUpperCase() !== 'HEAD') checkError(what, status, contentType, text);
        return true;
    }
    const key = [String(status), `${String(status)[0]}XX`, 'default'].find((k) => op.responses[k]);
    if (!key) throw new Error(`${what}: status not documented (has ${Object.keys(op.responses).join(', ')})`);
    const spec = resolve(doc, op.responses[key]);
    const types = Object.keys(spec.content ?? {});
    if (!types.length) return true;
    const type = types.find((t) => mediaType(t) === mediaType(contentType));
    if (!type) throw new Error(`${what}: Content-Type ${contentType}, the document says ${types.join(' or ')}`);
    if (text === null || method.toUpperCase() === 'HEAD' || mediaType(type) !== 'application/json') return true;
    const base = op.responses[key].$ref
        ? op.responses[key].$ref.slice(1)
        : `/paths/${escape(route.template)}/${m}/responses/${key}`;
    checkJson(what, `${base}/content/application~1json/schema`, contentType, text);
    return true;
}
