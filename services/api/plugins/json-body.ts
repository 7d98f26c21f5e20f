// Request bodies: JSON only. Fastify's own parsers would take text/plain (then fail schema validation with 400
// where docs/api.md promises 415) and answer a "__proto__" key with "not valid JSON". Here text/plain has no
// parser, so Fastify answers 415 (problems.ts says what to send instead), and JSON goes through secure-json-parse
// (Fastify's own choice) with its two refusals told apart: broken JSON, or a prototype-pollution key.
// JSON bodies are typed: the app's ajv coerces types (coerceTypes, which a query string and path parameters need:
// "?limit=20" is a string), and would turn {"report": 123} into "123"; a body whose values do not have the types its
// schema names is refused before validation, with the same 400 shape.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import sjson from 'secure-json-parse';
import { HttpProblem } from './problems';

/** The detail for a body JSON.parse refused; never quotes the body (it may hold a report's free text). */
function invalidJsonDetail(err: Error): string {
  const at = /position (\d+)/.exec(err.message)?.[1];
  return `the body is not valid JSON${at ? ` (at character ${at})` : ''}: check quotes, commas and brackets`;
}

export function parseJsonBody(body: string): unknown {
  if (body.trim() === '') throw new HttpProblem(400, 'Content-Type is application/json but the body is empty');
  try {
    return sjson.parse(body, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    if (/forbidden prototype property/.test((err as Error).message)) {
      throw new HttpProblem(400, 'the body has a "__proto__" or "constructor": { "prototype" } key, which the API refuses (prototype pollution): remove it');
    }
    throw new HttpProblem(400, invalidJsonDetail(err as Error));
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The body as text: JSON is UTF-8 (RFC 8259 section 8.1); other bytes are a 400, never replaced with U+FFFD. */
export function decodeJsonBody(body: Buffer, contentType?: string): string {
  try {
    return UTF8.decode(body);
  } catch {
    const charset = /;\s*charset\s*=\s*"?([^";\s]{1,40})/i.exec(contentType ?? '')?.[1];
    const named = charset && !/^utf-?8$/i.test(charset) ? ` (not ${charset})` : '';
    throw new HttpProblem(400, `the body is not valid UTF-8: send JSON encoded as UTF-8${named}`);
  }
}

type Mismatch = { field: string; message: string };

function typeOk(type: string, value: unknown): boolean {
  switch (type) {
    case 'string': return typeof value === 'string';
    case 'number': return typeof value === 'number';
    case 'integer': return typeof value === 'number' && Number.isInteger(value);
    case 'boolean': return typeof value === 'boolean';
    case 'null': return value === null;
    case 'array': return Array.isArray(value);
    case 'object': return value !== null && typeof value === 'object' && !Array.isArray(value);
    default: return true;
  }
}

/**
 * Where a parsed JSON value's types differ from the `type` keywords of its JSON schema (objects' properties, array
 * items, anyOf branches); everything else (lengths, patterns, required) is left to the validator.
 */
export function bodyTypeMismatches(schema: unknown, value: unknown, path = 'body'): Mismatch[] {
  if (!schema || typeof schema !== 'object') return [];
  const s = schema as { type?: unknown; properties?: Record<string, unknown>; items?: unknown; anyOf?: unknown[] };
  if (Array.isArray(s.anyOf)) {
    const branches = s.anyOf.map((b) => bodyTypeMismatches(b, value, path));
    if (branches.some((b) => b.length === 0)) return [];
    return branches[0] ?? [];
  }
  const types = typeof s.type === 'string' ? [s.type] : Array.isArray(s.type) ? (s.type as string[]) : null;
  if (types && !types.some((t) => typeOk(t, value))) return [{ field: path, message: `must be ${types.join(' or ')}` }];
  const out: Mismatch[] = [];
  if (s.properties && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, sub] of Object.entries(s.properties)) {
      if (Object.prototype.hasOwnProperty.call(value, key)) out.push(...bodyTypeMismatches(sub, (value as Record<string, unknown>)[key], `${path}/${key}`));
    }
  }
  if (s.items && Array.isArray(value)) value.forEach((v, i) => out.push(...bodyTypeMismatches(s.items, v, `${path}/${i}`)));
  return out;
}

export const jsonBodyPlugin = fp(async function jsonBody(app: FastifyInstance) {
  // Bodies are read as sent: a compressed one (Content-Encoding: gzip) was refused as "not valid JSON", which sent
  // the client looking for a fault in its JSON.
  app.addHook('preParsing', async (request) => {
    const { 'content-length': length, 'transfer-encoding': chunked } = request.headers;
    if (chunked === undefined && (length === undefined || length === '0')) return; // no body: nothing encoded
    // A route under /api/ without a body schema takes none, and refuses one as a route without a query-string schema
    // refuses a query string (problems.ts): POST …/restore with {"id": …}, or a GET with a filter in its body, was
    // answered as if the body applied. A GET body has no defined meaning (RFC 9110 9.3.1) and proxies may drop it.
    const route = request.routeOptions.url;
    if (route?.startsWith('/api/') && !request.routeOptions.schema?.body) {
      throw new HttpProblem(400, `${request.method} ${route} takes no request body: send none`);
    }
    // Node undoes only "chunked": a body sent "Transfer-Encoding: gzip, chunked" reached the parser still compressed
    // (RFC 9112 section 6.1: a transfer coding the server does not know is a 501).
    const codings = String(chunked ?? '').split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'chunked');
    if (codings.length > 0) {
      throw new HttpProblem(501, `Transfer-Encoding ${codings.join(', ').slice(0, 40)} is not accepted: send the body uncompressed (chunked or with a Content-Length)`);
    }
    const encoding = String(request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    if (encoding !== 'identity' && encoding !== '') {
      throw new HttpProblem(415, `Content-Encoding ${encoding.slice(0, 40)} is not accepted: send the body uncompressed`);
    }
  });
  app.addHook('preValidation', async (request) => {
    const schema = request.routeOptions.schema?.body;
    if (!schema || request.body === undefined) return;
    // Listed as validation failures are (at most 20): 60,000 numbers in a string array were a 6 MB answer.
    const errors = bodyTypeMismatches(schema, request.body);
    if (errors.length > 0) throw HttpProblem.forFields(400, errors);
  });
  app.removeContentTypeParser(['application/json', 'text/plain']);
  // Read as bytes and decoded strictly: parseAs 'string' turned bytes that are not UTF-8 (a RIS sending Latin-1) into
  // U+FFFD, and the report was filed, or a query saved, with its letters replaced.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseJsonBody(decodeJsonBody(body as Buffer, request.headers['content-type'])));
    } catch (err) {
      done(err as HttpProblem, undefined);
    }
  });
});
