// OpenAPI 3 document generated from the routes' TypeBox schemas, and Swagger UI at /docs. The UI's assets ship
// inside @fastify/swagger-ui and are served from this process (no CDN: reading rooms are often offline).
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { staticRefusal } from '../routes/page';

export const openApiPlugin = fp(async function openApi(app: FastifyInstance, opts: { version: string }) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'neurotriage API',
        version: opts.version,
        description: 'Triage results for brain MRI studies. Every route except /livez, /healthz and /readyz needs a bearer token; errors are application/problem+json (RFC 9457).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
});

/** The UI itself, registered in its own context so its routes are public (a browser cannot send a bearer token to load a page). */
export async function swaggerUiRoutes(app: FastifyInstance): Promise<void> {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), public: true };
  });
  // Its assets are served by @fastify/static too, whose refusals said only "Forbidden" and "Bad Request".
  app.setErrorHandler(staticRefusal);
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { deepLinking: false } });
}
