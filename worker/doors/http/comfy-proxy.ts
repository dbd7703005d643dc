// COMFY_PROXY=true: ComfyUI's own routes (the UI, /object_info, /ws ...) under /comfy/, so the
// worker stays the only thing the outside world talks to. Websocket upgrades are proxied too.
import type { Server } from 'node:http';
import type { RequestHandler } from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';

export const COMFY_PROXY_PREFIX = '/comfy';

export interface ComfyProxy {
  middleware: RequestHandler;
  /** Routes websocket upgrades under /comfy/ to ComfyUI. */
  attach(server: Server): void;
}

export function createComfyProxy(comfyBaseUrl: string): ComfyProxy {
  const proxy = createProxyMiddleware({
    target: comfyBaseUrl,
    changeOrigin: true,
    ws: true,
    pathRewrite: (path) => path.replace(/^\/comfy(?=\/|$)/, '') || '/',
  });
  return {
    middleware: proxy as unknown as RequestHandler,
    attach(server) {
      server.on('upgrade', (req, socket, head) => {
        if (req.url?.startsWith(`${COMFY_PROXY_PREFIX}/`)) proxy.upgrade(req, socket as never, head);
      });
    },
  };
}
