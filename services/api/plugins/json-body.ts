// Request bodies: JSON only. Fastify's own parsers would take text/plain (then fail schema validation with 400
// where docs/api.md promises 415) and answer a "__proto__" key with "not valid JSON". Here text/plain has no
// parser, so Fastify answers 415 (problems.ts says what to send instead), and JSON goes through secure-json-parse
// (Fastify's own choice) with its two refusals told apart: broken JSON, or a prototype-pollution key.
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

export const jsonBodyPlugin = fp(async function jsonBody(app: FastifyInstance) {
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as HttpProblem, undefined);
    }
  });
});
