// The HTTP door (WORKER_MODE=http): the api-wrapper routes, health, metrics and, when asked, a
// pass-through to ComfyUI. Only translation happens here; jobs run in the runner.
import http from 'node:http';
import express from 'express';
import type { ComfyClient } from '../../comfy/client';
import type { Config } from '../../config';
import type { JobQueue } from '../../jobs/queue';
import type { Logger } from '../../observability/logger';
import type { Metrics } from '../../observability/metrics';
import type { WrapperContext } from '../wrapper/request';
import { COMFY_PROXY_PREFIX, createComfyProxy } from './comfy-proxy';
import { errorHandler } from './errors';
import { healthRoutes } from './health';
import { wrapperRoutes } from './wrapper-routes';

export interface HttpDoorDeps {
  config: Config;
  queue: JobQueue;
  comfy: ComfyClient;
  wrapper: WrapperContext;
  metrics: Metrics;
  logger: Logger;
}

export function createHttpServer(deps: HttpDoorDeps): http.Server {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const proxy = deps.config.comfy.proxy ? createComfyProxy(deps.config.comfy.baseUrl) : undefined;
  // The proxy must see the raw body, so it goes before the JSON parser.
  if (proxy) app.use(COMFY_PROXY_PREFIX, proxy.middleware);
  app.use(express.json({ limit: deps.config.http.maxBodyBytes }));
  app.use(healthRoutes(deps));
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  app.use(wrapperRoutes(deps));
  app.use((req, res) => {
    res.status(404).json({ error: { code: 'not_found', message: `No route ${req.method} ${req.path}`, status: 404 } });
  });
  app.use(errorHandler(deps.logger, deps.config.http.maxBodyBytes));
  const server = http.createServer(app);
  proxy?.attach(server);
  return server;
}
