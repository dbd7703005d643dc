import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModifierRegistry } from '../worker/contracts/wrapper/modifiers';
import { buildRequestBody, FALLBACK_PROMPT, loadBenchmarkSource, loadPrompts, requiredClasses } from './payload';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-unit-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const defaults = { width: 512, height: 512, steps: 20 };

test('default: SD1.5 Text2Image with the configured size and steps, a random prompt and seed per run', () => {
  const source = loadBenchmarkSource({ ...defaults, width: 768 });
  expect(source).toEqual({ kind: 'text2image', width: 768, height: 512, steps: 20 });
  const prompts = loadPrompts();
  expect(prompts.length).toBeGreaterThanOrEqual(30); // misc/test_prompts.txt
  const bodies = Array.from({ length: 20 }, (_, i) => buildRequestBody(source, `r${i}`, prompts).input);
  expect(bodies[0]).toMatchObject({
    request_id: 'r0',
    modifier: 'Text2Image',
    modifications: { width: 768, height: 512, steps: 20 },
  });
  const mods = bodies.map((b) => b.modifications as { prompt: string; seed: number });
  expect(new Set(mods.map((m) => m.seed)).size).toBe(20);
  expect(new Set(mods.map((m) => m.prompt)).size).toBeGreaterThan(1);
  for (const m of mods) {
    expect(prompts).toContain(m.prompt);
    expect(Number.isSafeInteger(m.seed) && m.seed >= 0).toBe(true);
  }
});

test('a prompts file that is missing or empty falls back to one prompt', () => {
  expect(loadPrompts(path.join(dir, 'none.txt'))).toEqual([FALLBACK_PROMPT]);
  fs.writeFileSync(path.join(dir, 'empty.txt'), '\n\n');
  expect(loadPrompts(path.join(dir, 'empty.txt'))).toEqual([FALLBACK_PROMPT]);
});

test('a workflow file: sent as workflow_json with integer seeds randomised; a request body file kept', () => {
  const wf = path.join(dir, 'wf.json');
  fs.writeFileSync(wf, JSON.stringify({ '1': { class_type: 'KSampler', inputs: { seed: 1, noise_seed: 2, steps: 3 } } }));
  const source = loadBenchmarkSource({ ...defaults, jsonPath: wf });
  const a = buildRequestBody(source, 'a', ['p']).input as any;
  const b = buildRequestBody(source, 'b', ['p']).input as any;
  expect(a.workflow_json['1'].inputs.steps).toBe(3);
  expect(a.workflow_json['1'].inputs.seed).not.toBe(b.workflow_json['1'].inputs.seed);
  expect(a.workflow_json['1'].inputs.noise_seed).not.toBe(2);
  expect(requiredClasses(source, ModifierRegistry.load())).toEqual(['KSampler']);

  const body = path.join(dir, 'body.json');
  fs.writeFileSync(body, JSON.stringify({ input: { modifier: 'Text2Image', modifications: { steps: 4, seed: 1 } } }));
  const fromBody = buildRequestBody(loadBenchmarkSource({ ...defaults, jsonPath: body }), 'c', ['p']).input as any;
  expect(fromBody).toMatchObject({ request_id: 'c', modifier: 'Text2Image', modifications: { steps: 4 } });
});

test('the node classes of the default workflow', () => {
  expect(requiredClasses(loadBenchmarkSource(defaults), ModifierRegistry.load())).toEqual([
    'CLIPTextEncode',
    'CheckpointLoaderSimple',
    'EmptyLatentImage',
    'KSampler',
    'SaveImage',
    'VAEDecode',
  ]);
});

test('an unusable BENCHMARK_JSON_PATH is an error naming it', () => {
  fs.writeFileSync(path.join(dir, 'bad.json'), '{not json');
  expect(() => loadBenchmarkSource({ ...defaults, jsonPath: path.join(dir, 'bad.json') })).toThrow(
    /^BENCHMARK_JSON_PATH .* is not a readable JSON file/,
  );
  fs.writeFileSync(path.join(dir, 'list.json'), '[]');
  expect(() => loadBenchmarkSource({ ...defaults, jsonPath: path.join(dir, 'list.json') })).toThrow(/must hold a JSON object/);
});
