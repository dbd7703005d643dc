// Docker HEALTHCHECK: the worker's GET /health (200 when ComfyUI and the database answer).
// HEALTHCHECK_URL overrides the address; otherwise it follows the door: the Vast door on
// WORKER_PORT (HTTPS with USE_SSL; the certificate names the public address, not loopback), the
// others on API_PORT. RunPod's serverless loop serves no HTTP: there, healthy means running.
'use strict';
const http = require('node:http');
const https = require('node:https');

const env = process.env;
const truthy = (v) => /^(1|true|yes|on|t|y)$/i.test((v || '').trim());

function target() {
  if (env.HEALTHCHECK_URL) return env.HEALTHCHECK_URL;
  const mode = (env.WORKER_MODE || '').trim().toLowerCase();
  const vast = mode === 'vast' || (mode === '' && env.REPORT_ADDR && env.CONTAINER_ID);
  if (vast) return `${truthy(env.USE_SSL) ? 'https' : 'http'}://127.0.0.1:${env.WORKER_PORT || 3000}/health`;
  const runpod = mode === 'runpod' || (mode === '' && (env.RUNPOD_WEBHOOK_GET_JOB || truthy(env.SERVE_API_LOCALLY)));
  if (runpod && env.RUNPOD_WEBHOOK_GET_JOB) return undefined;
  return `http://127.0.0.1:${env.API_PORT || 8000}/health`;
}

const url = target();
if (url === undefined) process.exit(0);
const client = url.startsWith('https:') ? https : http;
const req = client.get(url, { timeout: 8000, rejectUnauthorized: false }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => {
  process.stderr.write(`healthcheck: ${url}: ${err.message}\n`);
  process.exit(1);
});
