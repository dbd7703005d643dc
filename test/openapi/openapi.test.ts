// The API description: every door serves GET /openapi.json, every route its express app registers
// is described there, every documented example passes its schema (and the door's own parser), and
// the document has the structure OpenAPI 3.1 asks for.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type express from 'express';
import { startSimulator, type Simulator } from '../../simulator';
import { loadConfig } from '../../worker/config';
import { parseWorkerComfyInput } from '../../worker/contracts/worker-comfyui/input';
import { parseWrapperRequest } from '../../worker/contracts/wrapper/request';
import { buildCore, doorContext, type Core } from '../../worker/core';
import type { DoorContext } from '../../worker/doors/door';
import { createHttpServer } from '../../worker/doors/http/app';
import { WRAPPER_EXAMPLES, httpDoorDoc } from '../../worker/doors/http/openapi';
import { parseRunRequest } from '../../worker/doors/http/run-request';
import { buildOpenApi, type DoorDoc } from '../../worker/doors/openapi';
import { fromDoor } from '../../worker/doors/runpod/context';
import { LocalApi } from '../../worker/doors/runpod/local-api';
import { runpodLocalDoc } from '../../worker/doors/runpod/openapi';
import { createVastApp } from '../../worker/doors/vast/app';
import { parseEnvelope } from '../../worker/doors/vast/envelope';
import { LoadLedger } from '../../worker/doors/vast/ledger';
import { vastDoorDoc } from '../../worker/doors/vast/openapi';
import { SignatureVerifier } from '../../worker/doors/vast/signature';
import { VastState } from '../../worker/doors/vast/state';
import { createOutboundClient } from '../../worker/net/outbound';
import { createLogger } from '../../worker/observability/logger';
import { tempDir } from '../support/tmp';
import { callJson, startTestWorker } from '../support/worker';

/**
 * Routes described before another branch registers them (issue 12: ops adds them). Keep this
 * honest: a route listed here must be documented and not registered; once it is registered the
 * test fails until it is taken off the list.
 */
const PENDING: Record<string, string[]> = {};

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle: { stack?: Layer[] };
  rawPath?: unknown;
}

/** misc/example_workflow_api.json: the README's example, which runs on the simulator. */
const HTTP_WORKFLOW = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', 'misc', 'example_workflow_api.json'), 'utf8'),
) as Record<string, unknown>;

const openApiPath = (p: string) => p.replace(/:(\w+)/g, '{$1}');
/** Parameter names are the doc's choice (`{job_id}` where express says `:jobId`): compared by position. */
const shape = (route: string) => route.replace(/\{\w+\}/g, '{}');

/** Every "METHOD /path" the app's router stack answers, and the prefixes of mounted middleware. */
function registeredRoutes(app: express.Express): { routes: Set<string>; prefixes: Set<string> } {
  const routes = new Set<string>();
  const prefixes = new Set<string>();
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? openApiPath(layer.rawPath) : '';
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods)) {
          if (method !== '_all') routes.add(shape(`${method.toUpperCase()} ${prefix}${openApiPath(layer.route.path)}`));
        }
      } else if (Array.isArray(layer.handle.stack)) walk(layer.handle.stack, `${prefix}${mount}`);
      else if (mount !== '') prefixes.add(shape(`${prefix}${mount}`));
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return { routes, prefixes };
}

function documentedRoutes(doc: Record<string, any>): Set<string> {
  const out = new Set<string>();
  for (const [p, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(item)) out.add(shape(`${method.toUpperCase()} ${p}`));
  }
  return out;
}

const appOf = (server: http.Server) => server.listeners('request')[0] as unknown as express.Express;

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let sim: Simulator;
let core: Core;
let ctx: DoorContext;
const doors: Array<{ name: string; doc: DoorDoc; server: http.Server; url: string }> = [];

beforeAll(async () => {
  sim = await startSimulator();
  const dir = tempDir('openapi-');
  const config = loadConfig({
    COMFYUI_API_BASE: sim.url,
    SQLITE_DB_PATH: path.join(dir, 'jobs.db'),
    COMFY_PROXY: 'true',
    LOG_LEVEL: 'silent',
  });
  core = buildCore(config, { logger: createLogger('silent') });
  ctx = doorContext(core);
  const ledger = new LoadLedger({ workloadPerRequest: 1, maxQueueTimeS: 10 });
  const vastApp = createVastApp({
    ctx,
    ledger,
    state: new VastState({ ledger, logger: ctx.logger }),
    verifier: new SignatureVerifier({ scheme: 'off', logger: ctx.logger }),
    benchmark: undefined,
  });
  const local = new LocalApi(fromDoor(ctx), { outbound: createOutboundClient({ allowPrivate: false }) });
  const servers: Array<[string, DoorDoc, http.Server]> = [
    ['http', httpDoorDoc({ comfyProxy: true }), createHttpServer(ctx)],
    ['vast', vastDoorDoc(), http.createServer(vastApp)],
    ['runpod', runpodLocalDoc(), local.createServer(1024 * 1024, ctx.config.http.limits)],
  ];
  for (const [name, doc, server] of servers) doors.push({ name, doc, server, url: await listen(server) });
});

afterAll(async () => {
  for (const { server } of doors) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  for (const backend of core?.backends ?? []) backend.close();
  core?.store.close();
  await sim?.close();
});

describe('GET /openapi.json on every door', () => {
  test.each(['http', 'vast', 'runpod'])(
    '%s: every registered route is described; only the pending ones are not registered',
    async (name) => {
      const door = doors.find((d) => d.name === name)!;
      const res = await callJson('GET', `${door.url}/openapi.json`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.body).toEqual(JSON.parse(JSON.stringify(buildOpenApi(door.doc))));

      const documented = documentedRoutes(res.body);
      const { routes, prefixes } = registeredRoutes(appOf(door.server));
      expect(routes.size).toBeGreaterThan(3);
      expect([...routes].filter((r) => !documented.has(r))).toEqual([]);
      // A middleware mounted at a path (the /comfy proxy, the /admin key check) answers under it.
      for (const prefix of prefixes) expect([...documented].some((r) => r.split(' ')[1]!.startsWith(`${prefix}/`))).toBe(true);
      const notRegistered = [...documented].filter(
        (r) => !routes.has(r) && ![...prefixes].some((p) => r.split(' ')[1]!.startsWith(`${p}/`)),
      );
      expect(notRegistered.sort()).toEqual([...(PENDING[name] ?? [])].sort());
    },
  );

  test('the HTTP door describes /comfy/* only when COMFY_PROXY is on', () => {
    const paths = (opts: { comfyProxy: boolean }) => Object.keys(buildOpenApi(httpDoorDoc(opts)).paths as object);
    expect(paths({ comfyProxy: true })).toContain('/comfy/{path}');
    expect(paths({ comfyProxy: false })).not.toContain('/comfy/{path}');
  });

  test('a worker started with API_KEY serves it without a key, as it serves /health', async () => {
    const worker = await startTestWorker(sim.url, { API_KEY: 'k-0123456789' }, false);
    try {
      const res = await callJson('GET', `${worker.url}/openapi.json`);
      expect(res.status).toBe(200);
      expect(res.body.paths['/run'].post.security).toEqual([{ apiKey: [] }, {}]);
      expect((await callJson('GET', `${worker.url}/stats`)).status).toBe(401);
    } finally {
      await worker.stop();
    }
  });
});

describe('the document', () => {
  test.each(['http', 'vast', 'runpod'])('%s: OpenAPI 3.1 structure, $refs resolve, path parameters declared', (name) => {
    const doc = buildOpenApi(doors.find((d) => d.name === name)!.doc) as Record<string, any>;
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(typeof doc.info.title).toBe('string');
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(typeof doc.paths).toBe('object');
    expect(typeof doc.components.schemas).toBe('object');
    const refs = JSON.stringify(doc).match(/"\$ref":"[^"]*"/g) ?? [];
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      const target = ref.slice('"$ref":"'.length, -1);
      expect(target).toMatch(/^#\/components\/schemas\//);
      expect(doc.components.schemas[target.split('/').pop()!]).toBeDefined();
    }
    const ids = new Set<string>();
    for (const [p, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      expect(p.startsWith('/')).toBe(true);
      const inPath = [...p.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      for (const [method, op] of Object.entries(item)) {
        expect(['get', 'post', 'put', 'patch', 'delete']).toContain(method);
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const key of Object.keys(op.responses)) expect(key).toMatch(/^([1-5]\d\d|default)$/);
        const declared = (op.parameters ?? [])
          .filter((x: any) => x.in === 'path')
          .map((x: any) => x.name)
          .sort();
        expect(declared).toEqual(inPath);
        expect(ids.has(op.operationId)).toBe(false);
        ids.add(op.operationId);
      }
    }
  });

  test("request bodies come from the parsers' zod schemas (fields, enums, workflow component)", () => {
    const doc = buildOpenApi(httpDoorDoc({ comfyProxy: false })) as Record<string, any>;
    const input = doc.paths['/generate/sync'].post.requestBody.content['application/json'].schema.properties.input;
    expect(Object.keys(input.properties)).toEqual(
      expect.arrayContaining(['request_id', 'modifier', 'modifications', 'workflow_json', 'images', 's3', 'webhook']),
    );
    expect(input.properties.workflow_json.$ref).toBe('#/components/schemas/Workflow');
    // An image decoded while the body was read is not something a client sends: only text is shown.
    expect(input.properties.images.items.properties.image.type).toBe('string');
    expect(input.properties.s3.properties.connect_attempts).toMatchObject({ type: 'integer', maximum: 10 });
    const stream = doc.paths['/generate/stream'].post.responses['200'].content;
    expect(Object.keys(stream)).toEqual(['text/event-stream']);
  });
});

/** The answer's status is documented for the route, and its body passes the documented schema. */
function checkAnswer(doc: DoorDoc, method: string, template: string, res: { status: number; body: unknown }): void {
  const route = doc.routes.find((r) => r.method === method.toLowerCase() && r.path === template);
  if (!route) throw new Error(`${method} ${template} is not documented`);
  const documented = route.responses[String(res.status)] ?? route.responses.default;
  if (!documented) throw new Error(`${method} ${template} answered ${res.status}, which is not documented`);
  const schema = documented.body?.schema;
  if (!schema) return;
  const parsed = schema.safeParse(res.body);
  if (!parsed.success)
    throw new Error(`${method} ${template} ${res.status}: ${parsed.error.message}\n${JSON.stringify(res.body).slice(0, 500)}`);
}

describe('real answers match the documented responses', () => {
  const workflow = () => structuredClone(HTTP_WORKFLOW);
  const waitEnded = async (url: string) => {
    for (let i = 0; i < 200; i++) {
      const res = await callJson('GET', url);
      if (['completed', 'failed', 'cancelled'].includes(res.body?.status)) return res;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${url} did not end`);
  };

  test('HTTP door: the job API, the api-wrapper routes, admin, health, errors', async () => {
    const doc = httpDoorDoc({ comfyProxy: true });
    const worker = await startTestWorker(sim.url, { COMFY_PROXY: 'true' });
    const at = (p: string) => `${worker.url}${p}`;
    const check = async (method: string, template: string, p: string, body?: unknown) => {
      const res = await callJson(method, at(p), body);
      checkAnswer(doc, method, template, res);
      return res;
    };
    try {
      const run = await check('POST', '/run', '/run', { workflow: workflow() });
      const done = await waitEnded(at(`/status/${run.body.job_id}`));
      expect(done.body.status).toBe('completed');
      checkAnswer(doc, 'GET', '/status/{job_id}', done);
      const wrapped = await check('POST', '/run', '/run', { input: { request_id: 'oa-1', workflow_json: workflow() } });
      checkAnswer(doc, 'GET', '/status/{job_id}', await waitEnded(at(`/status/${wrapped.body.job_id}`)));
      expect((await check('POST', '/generate/sync', '/generate/sync', WRAPPER_EXAMPLES.modifier)).status).toBe(200);
      expect(
        (await check('POST', '/generate', '/generate', { input: { request_id: 'oa-2', workflow_json: workflow() } })).status,
      ).toBe(202);
      await check('GET', '/result/{id}', '/result/oa-2');
      await check('POST', '/cancel/{id}', '/cancel/oa-2');
      await check('GET', '/result/{id}', '/result/nope');
      await check('POST', '/cancel/{id}', '/cancel/nope');
      await check('GET', '/queue-info', '/queue-info');
      await check('GET', '/stats', '/stats?include_recent=true');
      await check('GET', '/health', '/health');
      await check('GET', '/status/{job_id}', '/status/nope');
      expect((await check('POST', '/run', '/run', { workflow: 'nope' })).status).toBe(400);
      await check('POST', '/admin/cleanup', '/admin/cleanup?max_age_hours=12');
      await check('POST', '/admin/reset-stuck', '/admin/reset-stuck');
      await check('DELETE', '/admin/job/{job_id}', `/admin/job/${run.body.job_id}`);
      await check('DELETE', '/admin/job/{job_id}', '/admin/job/nope');
      const metrics = await fetch(at('/metrics'));
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    } finally {
      await worker.stop();
    }
  });

  test('RunPod local API: run, runsync, status, cancel, retry, purge-queue, health', async () => {
    const doc = runpodLocalDoc();
    const worker = await startTestWorker(sim.url, { WORKER_MODE: 'runpod', SERVE_API_LOCALLY: 'true' });
    const check = async (method: string, template: string, p: string, body?: unknown) => {
      const res = await callJson(method, `${worker.url}${p}`, body);
      checkAnswer(doc, method, template, res);
      return res;
    };
    try {
      const body = { input: { workflow: workflow() } };
      const queued = await check('POST', '/run', '/run', body);
      expect((await check('POST', '/runsync', '/runsync', body)).body.status).toBe('COMPLETED');
      await check('GET', '/status/{id}', `/status/${queued.body.id}`);
      await check('POST', '/status/{id}', `/status/${queued.body.id}`);
      await check('POST', '/cancel/{id}', `/cancel/${queued.body.id}`);
      await check('POST', '/retry/{id}', `/retry/${queued.body.id}`);
      await check('POST', '/retry/{id}', '/retry/nope');
      await check('POST', '/run', '/run', { input: {} });
      await check('POST', '/purge-queue', '/purge-queue');
      await check('GET', '/health', '/health');
      await check('POST', '/v2/{endpointId}/run', '/v2/ep-1/run', body);
    } finally {
      await worker.stop();
    }
  });

  test('Vast door: ping, benchmark, health and a malformed envelope', async () => {
    const doc = vastDoorDoc();
    const url = doors.find((d) => d.name === 'vast')!.url;
    for (const [method, p, body] of [
      ['GET', '/benchmark', undefined],
      ['GET', '/health', undefined],
      ['POST', '/generate/sync', { payload: 1 }],
    ] as const) {
      checkAnswer(doc, method, p, await callJson(method, `${url}${p}`, body));
    }
    const ping = await fetch(`${url}/ping`);
    checkAnswer(doc, 'GET', '/ping', { status: ping.status, body: await ping.text() });
  });
});

describe('documented examples', () => {
  const examples = (name: string) => {
    const door = doors.find((d) => d.name === name)!;
    const out: Array<{ where: string; route: string; schema: any; value: unknown }> = [];
    for (const route of door.doc.routes) {
      const at = `${route.method.toUpperCase()} ${route.path}`;
      for (const [ex, value] of Object.entries(route.body?.examples ?? {})) {
        out.push({ where: `${at} body ${ex}`, route: at, schema: route.body!.schema, value });
      }
      for (const [status, res] of Object.entries(route.responses)) {
        for (const [ex, value] of Object.entries(res.body?.examples ?? {})) {
          out.push({ where: `${at} ${status} ${ex}`, route: at, schema: res.body!.schema, value });
        }
      }
    }
    return out;
  };

  test.each(['http', 'vast', 'runpod'])('%s: every example passes its schema', (name) => {
    const list = examples(name);
    expect(list.length).toBeGreaterThan(1);
    const failures = list
      .map(({ where, schema, value }) => ({ where, result: schema.safeParse(value) }))
      .filter(({ result }) => !result.success)
      .map(({ where, result }) => `${where}: ${result.error.message}`);
    expect(failures).toEqual([]);
  });

  test("every request example is accepted by the door's own parser", async () => {
    let checked = 0;
    const bodies = (name: string) => examples(name).filter((e) => e.where.includes(' body '));
    for (const { route, value } of bodies('http')) {
      if (route === 'POST /run') await parseRunRequest(value, ctx.contracts, {});
      else await parseWrapperRequest(value, ctx.contracts);
      checked++;
    }
    for (const { value } of bodies('runpod')) {
      await parseWorkerComfyInput((value as { input: unknown }).input, ctx.contracts, 'input');
      checked++;
    }
    // The Vast envelope, parsed as the door parses it, then its payload.
    for (const { value } of bodies('vast')) {
      const parsed = parseEnvelope(JSON.stringify(value));
      if (!parsed.ok) throw new Error(`envelope refused: ${JSON.stringify(parsed.body)}`);
      await parseWrapperRequest(parsed.envelope.payload, ctx.contracts);
      checked++;
    }
    expect(checked).toBeGreaterThan(8);
  });

  test('a wrong example is caught', () => {
    const run = httpDoorDoc({ comfyProxy: false }).routes.find((r) => r.path === '/generate/sync')!;
    expect(run.body!.schema.safeParse({ input: { images: [{ name: 1 }] } }).success).toBe(false);
  });
});
