// COMFY_PROXY=true: ComfyUI's own routes (the UI, /object_info, /ws ...) under /comfy/, so the
// worker stays the only thing the outside world talks to. Websocket upgrades are proxied too.
import type { Server } from 'node:http';
import type { RequestHandler } from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';
import { checkKey, type RequiredKey } from './auth';

export const COMFY_PROXY_PREFIX = '/comfy';

export interface ComfyProxy {
  middleware: RequestHandler;
  /** Routes websocket upgrades under /comfy/ to ComfyUI. */
  attach(server: Server): void;
}

/** Websocket upgrades bypass Express, so they are checked against the API key here. */
export function createComfyProxy(comfyBaseUrl: string, access: RequiredKey): ComfyProxy {
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
        if (!req.url?.startsWith(`${COMFY_PROXY_PREFIX}/`)) {
          // Nothing else here speaks websocket: refuse rather than leave the socket hanging open.
          socket.end(`HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
          return;
        }
        const denied = checkKey(access, req);
        if (denied) {
          socket.end(`HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
          return;
        }
        proxy.upgrade(req, socket as never, head);
      });
    },
  };
}
