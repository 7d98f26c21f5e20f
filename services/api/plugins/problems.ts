// Every error leaves the API as an RFC 9457 problem response (application/problem+json) whose detail says what
// is wrong: validation failures name each field, unknown routes say so (a known path under another method is a 405
// with Allow), and unexpected errors are logged with the request id but answered without internals.
import { maxHeaderSize, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { redisUnavailable } from '../../../shared/health';
import type { Problem, ProblemLimit } from '../schemas';

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 413: 'Content Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type',
  417: 'Expectation Failed', 422: 'Unprocessable Content', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
};

/** Fastify's own messages for these say only the status; these say what to send instead. */
const FASTIFY_DETAILS: Record<string, (contentType?: string) => string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (ct) => `send the body as application/json, not ${ct ?? 'without a Content-Type'}`,
  FST_ERR_CTP_BODY_TOO_LARGE: () => 'the request body is larger than the API accepts (256 KiB)',
  FST_ERR_CTP_EMPTY_JSON_BODY: () => 'Content-Type is application/json but the body is empty',
};

/** A problem lists this many fields at fault at most (and says how many more). */
const MAX_LISTED = 20;

/** Thrown by handlers and plugins for any answer that is not a success. */
export class HttpProblem extends Error {
  override name = 'HttpProblem';
  constructor(
    public readonly statusCode: number,
    public readonly detail: string,
    public readonly headers: Record<string, string> = {},
    /** One entry per field at fault, as in validation failures. */
    public readonly errors?: { field: string; message: string }[],
    /** A 429's extension member naming the limit that refused the request (schemas.ts PROBLEM_LIMITS). */
    public readonly limit?: ProblemLimit,
  ) {
    super(detail);
  }

  /**
   * A problem naming each field at fault in its detail and errors: at most MAX_LISTED of them, then how many more (a
   * 240 KiB body of 40,000 bad array items was answered with every one, 8 MB, half a second of the event loop).
   */
  static forFields(statusCode: number, all: { field: string; message: string }[]): HttpProblem {
    const errors = all.slice(0, MAX_LISTED);
    const more = all.length > MAX_LISTED ? `; and ${all.length - MAX_LISTED} more` : '';
    return new HttpProblem(statusCode, `${errors.map((e) => `${e.field} ${e.message}`).join('; ')}${more}`, {}, errors);
  }
}

/** Header fields that are one value, never a list: a request that repeats one is refused (problemsPlugin). */
const SINGLE_HEADERS = ['Host', 'Authorization', 'Content-Type'];

/** A request path is echoed back (a 404's detail, every problem's instance) only up to here. */
const ECHO_MAX = 200;

/** The path as echoed back: up to ECHO_MAX characters, then "…" (a path may be as long as the 16 KiB request line). */
export function echoedPath(path: string): string {
  return path.length > ECHO_MAX ? `${path.slice(0, ECHO_MAX)}…` : path;
}

/**
 * The path of a request target, without its query string. A target in absolute form (`GET http://host/api/v1/worklist`,
 * RFC 9112 section 3.2.2, which a server must accept) is routed by its path, so every check of the path reads that:
 * the raw target failed startsWith('/api/') and the worklist went out without no-store.
 */
export function targetPath(url: string): string {
  const origin = /^https?:\/\/[^/?#]*/i.exec(url);
  const path = origin ? url.slice(origin[0].length) : url;
  return path.startsWith('/') ? path.split('?')[0] : `/${path.split('?')[0]}`;
}

export function problemBody(status: number, detail: string, instance?: string): Problem {
  return {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    ...(instance ? { instance: echoedPath(instance) } : {}),
  };
}

const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];

/**
 * "must be >= 0.5 and <= 1" for a number bounded on both sides: Ajv names only the bound that failed, and a client
 * that sent 1e-300 and fixed it to 2 learnt of the upper bound from a second 400.
 */
function rangeOf(schema: unknown): string | null {
  const s = (schema ?? {}) as { minimum?: number; maximum?: number; exclusiveMinimum?: number; exclusiveMaximum?: number };
  const low = s.minimum !== undefined ? `>= ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : null;
  const high = s.maximum !== undefined ? `<= ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : null;
  return low && high ? `must be ${low} and ${high}` : null;
}

/**
 * The schema object holding the keyword at Ajv's schemaPath ("#/properties/limit/maximum" -> the limit schema), read
 * from the route's own schema: Ajv's verbose option would give it too, but also copies the refused value (a report's
 * text) into every validation error, where a logged error would carry it.
 */
function schemaHolding(root: unknown, schemaPath: string): unknown {
  const steps = schemaPath.replace(/^#\/?/, '').split('/').slice(0, -1).map((p) => decodeURIComponent(p).replace(/~1/g, '/').replace(/~0/g, '~'));
  return steps.reduce<unknown>((s, step) => (s !== null && typeof s === 'object' ? (s as Record<string, unknown>)[step] : undefined), root);
}

/**
 * The validation failures, one per field. A query-string parameter given twice (`?limit=1&limit=2`) reaches the schema
 * as an array and failed as "must be integer" for a value that is one: it says it was given more than once.
 */
function validationErrors(err: FastifyError, query: unknown, schemas: Record<string, unknown> = {}): { field: string; message: string }[] {
  return (err.validation ?? []).map((v) => {
    const params = v.params as Record<string, unknown>;
    const named = params.missingProperty ?? params.additionalProperty;
    const extra = typeof named === 'string' ? `/${named}` : '';
    const allowed = Array.isArray(params.allowedValues) ? ` (${params.allowedValues.join(', ')})` : '';
    const field = `${err.validationContext ?? 'request'}${v.instancePath}${extra}`;
    const given = err.validationContext === 'querystring' && v.keyword === 'type' && query && typeof query === 'object'
      ? (query as Record<string, unknown>)[v.instancePath.slice(1)]
      : undefined;
    if (Array.isArray(given)) return { field, message: `is given ${given.length} times: send it once` };
    const range = BOUNDS.includes(v.keyword) ? rangeOf(schemaHolding(schemas[err.validationContext ?? ''], v.schemaPath)) : null;
    if (range) return { field, message: range };
    return { field, message: `${v.message ?? 'is invalid'}${allowed}` };
  });
}

/**
 * Fastify's clientErrorHandler: what Node's HTTP parser refuses before there is a request (a request line or headers
 * over the parser's limit, bytes that are not HTTP, a request that did not arrive in time) answered as a problem
 * too. Fastify's default answers these with its own JSON shape.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, detail] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, `the request line and headers together are larger than the API accepts (${maxHeaderSize / 1024} KiB): shorten the URL or the headers`]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request did not arrive in full in time']
        : [400, 'the request is not well-formed HTTP/1.1'];
  const body = JSON.stringify(problemBody(status, detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${TITLES[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/**
 * The server's 'checkExpectation' listener: an Expect header other than 100-continue. Without one, Node answers 417
 * itself with no body at all.
 */
export function expectationFailed(req: IncomingMessage, res: ServerResponse): void {
  const expect = String(req.headers.expect ?? '');
  const body = JSON.stringify(
    problemBody(417, `Expect: ${expect.length > 100 ? `${expect.slice(0, 100)}…` : expect} is not one the API meets: send Expect: 100-continue, or no Expect header`),
  );
  res.writeHead(417, { 'Content-Type': 'application/problem+json', 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', Connection: 'close' });
  res.end(body);
}


/**
 * The server's 'connect' listener: a CONNECT request (a tunnel through a proxy, RFC 9110 9.3.6), which the router never
 * sees. Without a listener Node closed the connection with no answer at all.
 */
export function connectNotServed(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => undefined);
  const body = JSON.stringify(problemBody(501, 'CONNECT is not served: this is the neurotriage API, not a proxy; the API is described at /docs'));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 501 ${TITLES[501]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.end();
}

/**
 * Fastify's frameworkErrors: what its router refuses before there is a route. Its own answers are plain JSON in
 * another shape, without nosniff or no-store, and quote the whole path (up to the 16 KiB request line): a path whose
 * percent-encoding does not decode ("%ZZ", "%C3%28", a lone "%"), and a path segment over maxParamLength.
 */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const path = targetPath(request.url);
  const [status, detail] =
    err.code === 'FST_ERR_BAD_URL'
      ? [400, 'the path holds a percent-encoding that does not decode ("%" not followed by two hex digits, or bytes that are not UTF-8): send "%" itself as %25']
      : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? [414, 'a path segment is longer than the API reads: shorten it']
        : [500, `the server failed to answer; quote request id ${request.id} to the administrator`];
  if (status >= 500) request.log.error({ err }, 'request failed');
  reply.code(status).type('application/problem+json').header('X-Content-Type-Options', 'nosniff');
  if (path.startsWith('/api/')) reply.header('Cache-Control', 'no-store');
  void reply.send(problemBody(status, detail, path));
}

/**
 * The first query parameter (by name, or its position when the name itself does not decode) whose percent-encoding
 * does not decode: Fastify's query string parser keeps such a component as the literal text ("%zz", "%FF"), so a
 * search for "%E2%82" ran on the undecoded letters instead of being refused as the path's bad encoding is.
 */
export function undecodableQueryParameter(url: string): string | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  const decodes = (s: string): boolean => {
    try {
      decodeURIComponent(s.replaceAll('+', ' '));
      return true;
    } catch {
      return false;
    }
  };
  const parts = url.slice(q + 1).split('&');
  for (const [i, part] of parts.entries()) {
    if (!part.includes('%')) continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (!decodes(name)) return `parameter ${i + 1}'s name`;
    if (eq >= 0 && !decodes(part.slice(eq + 1))) return `querystring/${decodeURIComponent(name.replaceAll('+', ' ')).slice(0, 64)}`;
  }
  return undefined;
}

/**
 * Query and path values the schema read as numbers but that overflowed to Infinity ("1e400"): Ajv's coercion turns
 * the string into Infinity and its bounds never see it (they skip non-finite numbers), so each is refused here.
 */
export function nonFiniteValues(values: unknown, context: string): { field: string; message: string }[] {
  if (values === null || typeof values !== 'object') return [];
  return Object.entries(values as Record<string, unknown>).flatMap(([key, v]) =>
    (Array.isArray(v) ? v : [v]).some((x) => typeof x === 'number' && !Number.isFinite(x))
      ? [{ field: `${context}/${key}`, message: 'must be a finite number' }]
      : [],
  );
}

/**
 * A route's path pattern as a regular expression over request paths: `:name` matches one segment or the part of it
 * before a static suffix (`:SOPInstanceUID.png`), as the router does; everything else is literal.
 */
function routePattern(url: string): RegExp {
  const parts = url.split(/:[A-Za-z_][A-Za-z0-9_]*/).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[^/]+?')}$`);
}

export const problemsPlugin = fp(async function problems(app: FastifyInstance, opts: { redisTimeoutMs?: number } = {}) {
  // Each route's pattern and methods, for the 405 below: Fastify's hasRoute() and findRoute() look a route up by its
  // pattern, not by a request path. Wildcard routes (the page's GET /*) are left out: they would make every path
  // "GET only" and every other method a 405.
  const routes = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  app.addHook('onRoute', (route) => {
    if (route.url.includes('*')) return;
    const entry = routes.get(route.url) ?? { pattern: routePattern(route.url), methods: new Set<string>() };
    for (const m of [route.method].flat()) entry.methods.add(m);
    routes.set(route.url, entry);
  });
  /** The methods some route takes on this path, sorted; none when no route has it (a 404). */
  const allowedMethods = (path: string): string[] =>
    [...new Set([...routes.values()].filter((r) => r.pattern.test(path)).flatMap((r) => [...r.methods]))].sort();
  // A route under /api/ that takes no query string refuses one, as those that take one refuse an unknown parameter:
  // GET /api/v1/queries?id=mass answered the whole list, as if the filter applied.
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/api/') || route.schema?.querystring) return;
    route.schema = { ...(route.schema ?? {}), querystring: { type: 'object', properties: {}, additionalProperties: false } };
  });
  // Node's own check (requireHostHeader, turned off in app.ts) answered a 400 with no body at all.
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) {
      throw new HttpProblem(400, 'an HTTP/1.1 request needs a Host header');
    }
    // Node keeps the first of these when one is sent twice and drops the rest unseen: a request with two
    // Authorization headers was answered as the first token's user (a proxy may have checked the other), and one
    // with two Host headers was served where RFC 9112 section 3.2 requires a 400.
    // (rawHeaders: names and values in turn, as received; app.inject() builds it too, headersDistinct it has not.)
    const raw = request.raw.rawHeaders;
    for (const name of SINGLE_HEADERS) {
      let count = 0;
      for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === name.toLowerCase()) count++;
      if (count > 1) throw new HttpProblem(400, `the request has ${count} ${name} headers: send one`);
    }
    const undecodable = undecodableQueryParameter(request.url);
    if (undecodable !== undefined) {
      throw new HttpProblem(400, `the query string holds a percent-encoding that does not decode in ${undecodable} ("%" not followed by two hex digits, or bytes that are not UTF-8): send "%" itself as %25`);
    }
  });
  app.addHook('preHandler', async (request) => {
    const errors = [...nonFiniteValues(request.query, 'querystring'), ...nonFiniteValues(request.params, 'params')];
    if (errors.length > 0) throw HttpProblem.forFields(400, errors);
  });
  app.setErrorHandler((err: FastifyError | HttpProblem, request, reply) => {
    const path = targetPath(request.url);
    if ('validation' in err && err.validation) {
      const problem = HttpProblem.forFields(400, validationErrors(err, request.query, request.routeOptions.schema as Record<string, unknown> | undefined));
      const body = { ...problemBody(400, problem.detail, path), errors: problem.errors };
      return reply.code(400).type('application/problem+json').send(body);
    }
    // Redis frozen or gone: a 503 naming it (as /readyz does), not a 500 to quote to the administrator.
    const redisDown = err instanceof HttpProblem ? undefined : redisUnavailable(err, opts.redisTimeoutMs);
    if (redisDown) {
      request.log.warn({ status: 503, detail: redisDown }, 'request refused');
      return reply.code(503).type('application/problem+json').header('Retry-After', '5').send(problemBody(503, `${redisDown}; try again shortly`, path));
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (err instanceof HttpProblem) {
      if (status >= 500) request.log.warn({ status, detail: err.detail }, 'request refused');
    } else if (status >= 500) request.log.error({ err }, 'request failed');
    if (err instanceof HttpProblem) reply.headers(err.headers);
    const detail =
      status >= 500 && !(err instanceof HttpProblem)
        ? `the server failed to answer; quote request id ${request.id} to the administrator`
        : (FASTIFY_DETAILS[(err as FastifyError).code ?? '']?.(request.headers['content-type']) ?? err.message);
    const errors = err instanceof HttpProblem && err.errors ? { errors: err.errors } : {};
    const limit = err instanceof HttpProblem && err.limit ? { limit: err.limit } : {};
    return reply.code(status).type('application/problem+json').send({ ...problemBody(status, detail, path), ...errors, ...limit });
  });
  app.setNotFoundHandler((request, reply) => {
    const path = targetPath(request.url);
    const allow = allowedMethods(path);
    if (allow.length > 0) {
      return reply
        .code(405)
        .header('Allow', allow.join(', '))
        .type('application/problem+json')
        .send(problemBody(405, `${request.method} is not allowed on ${echoedPath(path)}; it takes ${allow.join(', ')}`, path));
    }
    return reply
      .code(404)
      .type('application/problem+json')
      .send(problemBody(404, `no route ${request.method} ${echoedPath(path)}; the API is described at /docs`, path));
  });
});
