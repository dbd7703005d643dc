// The API description: every door serves an OpenAPI 3.1 document of its own routes at
// GET /openapi.json. Each door lists its routes (`<door>/openapi.ts`) with the zod schemas its
// parsers validate with, and this module turns them into the document with zod's own
// z.toJSONSchema, so the description cannot drift from the checks. Built once per door.
import fs from 'node:fs';
import path from 'node:path';
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { WORKFLOW_SCHEMA_REF, workflowSchema } from '../contracts';
import { errorBodySchema } from '../errors';

export type JsonSchema = Record<string, unknown>;
export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface BodyDoc {
  schema: z.ZodType;
  /** application/json unless said otherwise. */
  contentType?: string;
  description?: string;
  /** Named examples; each must pass `schema` (a test checks). */
  examples?: Record<string, unknown>;
}

export interface ParamDoc {
  name: string;
  in: 'path' | 'query' | 'header';
  description: string;
  schema: z.ZodType;
  required?: boolean;
}

export interface ResponseDoc {
  description: string;
  body?: BodyDoc;
  headers?: Record<string, string>;
}

export interface RouteDoc {
  method: Method;
  /** OpenAPI form: /status/{job_id} */
  path: string;
  summary: string;
  description?: string;
  tags?: string[];
  params?: ParamDoc[];
  body?: BodyDoc;
  responses: Record<string, ResponseDoc>;
  /** Which bearer key the route needs when keys are set (HTTP door); none: always open. */
  auth?: 'api' | 'admin' | 'none';
}

export interface DoorDoc {
  title: string;
  description: string;
  routes: RouteDoc[];
  /** The door checks bearer keys (API_KEY, ADMIN_API_KEY) when they are set. */
  bearer?: boolean;
}

/** `{"error": {code, message, status, field?, details?}}`: every door's own error answer. */
export const errorResponseSchema = z.object({ error: errorBodySchema });

/** Schemas shown once under components and referred to by $ref. */
const COMPONENTS: ReadonlyArray<[string, z.ZodType]> = [
  // Request fields that take a workflow point here (contracts mark them with WORKFLOW_SCHEMA_REF).
  [WORKFLOW_SCHEMA_REF.replace('#/components/schemas/', ''), workflowSchema],
  ['Error', errorResponseSchema],
];

/**
 * z.toJSONSchema for request and answer bodies. What a client cannot send (an image already
 * decoded to a file while the body was read, z.instanceof) is left out of the description.
 */
export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => {
      if (zodSchema._zod.def.type === 'custom') (jsonSchema as JsonSchema).not = {};
    },
  }) as JsonSchema;
  delete out.$schema;
  return withoutImpossible(out) as JsonSchema;
}

const isImpossible = (value: unknown) => typeof value === 'object' && value !== null && JSON.stringify(value) === '{"not":{}}';

/** Drops `{"not": {}}` branches of anyOf, and an anyOf left with one branch becomes that branch. */
function withoutImpossible(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutImpossible);
  if (typeof value !== 'object' || value === null) return value;
  const out: JsonSchema = {};
  for (const [key, child] of Object.entries(value)) out[key] = withoutImpossible(child);
  if (Array.isArray(out.anyOf)) {
    const kept = out.anyOf.filter((branch) => !isImpossible(branch));
    const { anyOf: _anyOf, ...rest } = out;
    if (kept.length === 1) return { ...rest, ...(kept[0] as JsonSchema) };
    return { ...rest, anyOf: kept };
  }
  return out;
}

function schemaRef(schema: z.ZodType): JsonSchema {
  const named = COMPONENTS.find(([, s]) => s === schema);
  return named ? { $ref: `#/components/schemas/${named[0]}` } : jsonSchemaOf(schema);
}

function content(body: BodyDoc): JsonSchema {
  const media: JsonSchema = { schema: schemaRef(body.schema) };
  if (body.examples) {
    media.examples = Object.fromEntries(Object.entries(body.examples).map(([name, value]) => [name, { value }]));
  }
  return { [body.contentType ?? 'application/json']: media };
}

function operation(route: RouteDoc, bearer: boolean): JsonSchema {
  const op: JsonSchema = {
    summary: route.summary,
    operationId: `${route.method}${route.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
  };
  if (route.description) op.description = route.description;
  if (route.tags) op.tags = route.tags;
  if (route.params) {
    op.parameters = route.params.map((p) => ({
      name: p.name,
      in: p.in,
      description: p.description,
      required: p.in === 'path' ? true : (p.required ?? false),
      schema: jsonSchemaOf(p.schema),
    }));
  }
  if (route.body) {
    op.requestBody = {
      required: true,
      content: content(route.body),
      ...(route.body.description ? { description: route.body.description } : {}),
    };
  }
  op.responses = Object.fromEntries(
    Object.entries(route.responses).map(([status, res]) => {
      const out: JsonSchema = { description: res.description };
      if (res.body) out.content = content(res.body);
      if (res.headers) {
        out.headers = Object.fromEntries(
          Object.entries(res.headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }]),
        );
      }
      return [status, out];
    }),
  );
  if (bearer) op.security = route.auth === 'none' ? [] : [{ [route.auth === 'admin' ? 'adminKey' : 'apiKey']: [] }, {}];
  return op;
}

/** The worker's version, from package.json (two levels up in the sources and in dist/). */
function version(): string {
  for (const up of ['../..', '../../..']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, up, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'comfyui-worker' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next level
    }
  }
  return '0.0.0';
}

export function buildOpenApi(door: DoorDoc): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of door.routes) {
    const item = (paths[route.path] ??= {});
    if (item[route.method]) throw new Error(`openapi: ${route.method.toUpperCase()} ${route.path} is described twice`);
    item[route.method] = operation(route, door.bearer ?? false);
  }
  const components: JsonSchema = {
    schemas: Object.fromEntries(COMPONENTS.map(([name, schema]) => [name, jsonSchemaOf(schema)])),
  };
  if (door.bearer) {
    components.securitySchemes = {
      apiKey: { type: 'http', scheme: 'bearer', description: 'API_KEY, when it is set' },
      adminKey: { type: 'http', scheme: 'bearer', description: 'ADMIN_API_KEY (else API_KEY), when it is set' },
    };
  }
  return {
    openapi: '3.1.1',
    info: { title: door.title, version: version(), description: door.description },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components,
  };
}

/** GET /openapi.json: the document, built once and sent as the same text each time. */
export function serveOpenApi(door: DoorDoc): RequestHandler {
  const text = JSON.stringify(buildOpenApi(door));
  return (_req, res) => {
    res.type('application/json').send(text);
  };
}

/** The route that serves the document, described like the others. */
export const OPENAPI_ROUTE: RouteDoc = {
  method: 'get',
  path: '/openapi.json',
  summary: 'This document (OpenAPI 3.1)',
  tags: ['meta'],
  auth: 'none',
  responses: { '200': { description: 'The OpenAPI document of this door', body: { schema: z.record(z.string(), z.unknown()) } } },
};

/** Shared parameter and body shapes of the doors' route lists. */
export const docs = {
  error(description: string): ResponseDoc {
    return { description, body: { schema: errorResponseSchema } };
  },
  pathParam(name: string, description: string): ParamDoc {
    return { name, in: 'path', description, schema: z.string() };
  },
  text(description: string, example?: string): ResponseDoc {
    return {
      description,
      body: { schema: z.string(), contentType: 'text/plain', ...(example !== undefined ? { examples: { example } } : {}) },
    };
  },
};
