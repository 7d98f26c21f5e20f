// Key images for the study view (reader role, audited): one stored frame rendered as a windowed greyscale PNG, and
// a series' slices in stack order so the page can step from the key slice to its neighbours. Rendering and stack
// order are key-images.ts; this module only maps HTTP to them.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { KeyImageStore } from '../key-images';
import { HttpProblem } from '../plugins/problems';
import { ImageParams, ImageQuery, SlicesParams, SlicesQuery, SlicesResponse, problems } from '../schemas';

export async function imageRoutes(fastify: FastifyInstance, opts: { images: KeyImageStore }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/api/v1/studies/:StudyInstanceUID/images/:SOPInstanceUID.png',
    {
      schema: {
        tags: ['studies'],
        summary: 'One stored frame as a windowed 8-bit greyscale PNG (pixels only, nothing of the header burnt in)',
        params: ImageParams, querystring: ImageQuery,
        response: { 200: { type: 'string', format: 'binary', description: 'image/png' }, 410: problems[404], 422: problems[400], ...problems },
      },
    },
    async (request, reply) => {
      const { StudyInstanceUID, SOPInstanceUID } = request.params;
      const w = request.query.window;
      const [center, width] = w && w !== 'auto' ? w.split(',').map(Number) : [];
      // A width below 1 is no window (PS3.3 C.11.2.1.2): refused, not silently widened to 1.
      if (width !== undefined && !(width >= 1)) {
        const message = `width must be at least 1 (got ${width})`;
        throw new HttpProblem(400, `querystring/window ${message}`, {}, [{ field: 'querystring/window', message }]);
      }
      const rendered = await opts.images.render(StudyInstanceUID, SOPInstanceUID, {
        ...(request.query.frame !== undefined ? { frame: request.query.frame } : {}),
        ...(width !== undefined ? { window: { center, width } } : {}),
      });
      await app.audit(request, 'study.image', { StudyInstanceUID });
      return reply
        .header('content-type', 'image/png')
        // Patient images: the browser may keep them for this session's stepping, shared caches never. Vary: the copy
        // is for the token that fetched it; without it the browser handed it to a request with no token or another
        // one (after sign-out on a shared workstation), unchecked and unaudited.
        .header('cache-control', 'private, max-age=300')
        .header('vary', 'Authorization')
        .header('x-window', `${Number(rendered.window.center.toFixed(2))},${Number(rendered.window.width.toFixed(2))}`)
        .send(rendered.png);
    },
  );

  app.get(
    '/api/v1/studies/:StudyInstanceUID/series/:SeriesInstanceUID/slices',
    {
      schema: {
        tags: ['studies'],
        summary: 'The stored slices of a series in stack order (along the slice normal), for stepping through them',
        params: SlicesParams, querystring: SlicesQuery, response: { 200: SlicesResponse, 410: problems[404], 422: problems[400], ...problems },
      },
    },
    async (request) => {
      const { StudyInstanceUID, SeriesInstanceUID } = request.params;
      const slices = await opts.images.slices(StudyInstanceUID, SeriesInstanceUID, request.query.containing);
      await app.audit(request, 'study.slices', { StudyInstanceUID, count: slices.slices.length });
      return slices;
    },
  );
}
