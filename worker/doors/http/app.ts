// The HTTP door (WORKER_MODE=http): the standalone job API (/run, /status, /stats, /admin), the
// api-wrapper routes, health, metrics and, when asked, a pass-through to ComfyUI. Only
// translation happens here; jobs run in the runner.
import type http from 'node:http';
import express from 'express';
import { jsonBody } from '../body';
import type { DoorContext } from '../door';
import { createDoorServer } from '../limits';
import { adminRoutes } from './admin-routes';
import { requireKey, type RequiredKey } from './auth';
import { COMFY_PROXY_PREFIX, createComfyProxy } from './comfy-proxy';
import { errorHandler } from './errors';
import { healthRoutes } from './health';
import { jobsRoutes } from './jobs-routes';
import { serveOpenApi } from '../openapi';
import { httpDoorDoc } from './openapi';
import { wrapperRoutes } from './wrapper-routes';

export function createHttpServer(deps: DoorContext): http.Server {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const { apiKey, adminApiKey } = deps.config.access;
  const apiAccess: RequiredKey = { key: apiKey, name: 'API_KEY' };
  const adminAccess: RequiredKey = adminApiKey !== undefined ? { key: adminApiKey, name: 'ADMIN_API_KEY' } : apiAccess;
  const proxy = deps.config.comfy.proxy ? createComfyProxy(deps.config.comfy.baseUrl, apiAccess) : undefined;
  // Order matters: /openapi.json and /health are open, /admin has its own key, everything after needs API_KEY.
  // The API description is open like /health: it holds nothing but the routes' shapes.
  app.get('/openapi.json', serveOpenApi(httpDoorDoc({ comfyProxy: proxy !== undefined })));
  app.use(healthRoutes(deps));
  if (deps.config.jobs.role === 'runner') {
    // A runner worker runs jobs from the shared queue and serves only /health and /metrics.
    app.use(requireKey(apiAccess));
    app.get('/metrics', async (_req, res) => {
      const { contentType, body } = await deps.metrics.render();
      res.type(contentType).send(body);
    });
    app.use((req, res) => {
      res.status(404).json({
        error: {
          code: 'not_found',
          message: `No route ${req.method} ${req.path} (WORKER_ROLE=runner serves /health and /metrics only)`,
          status: 404,
        },
      });
    });
    app.use(errorHandler(deps.logger, deps.config.http.maxBodyBytes));
    return createDoorServer(app, deps.config.http.limits);
  }
  app.use('/admin', requireKey(adminAccess), adminRoutes(deps));
  app.use(requireKey(apiAccess));
  // The proxy must see the raw body, so it goes before the JSON parser.
  if (proxy) app.use(COMFY_PROXY_PREFIX, proxy.middleware);
  // Bodies are read in chunks, input images decoded to spool files as they arrive (doors/body.ts).
  const maxBytes = deps.config.http.maxBodyBytes;
  app.use(jsonBody({ maxBytes, spool: () => deps.jobs.inputSpool() }, express.json({ limit: maxBytes })));
  app.get('/metrics', async (_req, res) => {
    const { contentType, body } = await deps.metrics.render();
    res.type(contentType).send(body);
  });
  app.use(jobsRoutes(deps));
  app.use(wrapperRoutes(deps));
  app.use((req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: `No route ${req.method} ${req.path}`, status: 404 } });
  });
  app.use(errorHandler(deps.logger, deps.config.http.maxBodyBytes));
  const server = createDoorServer(app, deps.config.http.limits);
  proxy?.attach(server);
  return server;
}
