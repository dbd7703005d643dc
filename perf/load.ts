// What the perf scripts send: a light keep-alive client (so the figures are the worker's, not the
// client's) and a small workflow ComfyUI cannot answer from its cache.
import http from 'node:http';

export type Request = (url: string, method: string, body?: string) => Promise<{ status: number; text: string }>;

/** A node:http client over one keep-alive agent of `maxSockets` sockets. */
export function keepAliveClient(maxSockets: number): Request {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  return (url, method, body) =>
    new Promise((resolve, reject) => {
      const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
      const req = http.request(url, { method, agent, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.once('error', reject);
      req.end(body);
    });
}

/** Four nodes (three run, with the simulator's per-node delay), a new first node for every `i`. */
export function uncachedWorkflow(i: number) {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 64, height: 64, batch_size: 1, color: 1000 + i } },
    '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
    '3': {
      class_type: 'ImageScale',
      inputs: { image: ['2', 0], upscale_method: 'nearest-exact', width: 32, height: 32, crop: 'disabled' },
    },
    '4': { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: `perf${i}` } },
  };
}
