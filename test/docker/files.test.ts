// What can be checked of the Docker files without a Docker engine: the build stage copies every
// source folder the build compiles, every path copied exists, the worker-only image stays the
// default target, both images have a HEALTHCHECK, and docker-compose.yml builds the `comfyui`
// target with a GPU and the database on a volume.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const ROOT = path.resolve(__dirname, '..', '..');
const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

interface Stage {
  from: string;
  name: string;
  lines: string[];
}

/** The Dockerfile's stages, continuation lines joined, comments dropped. */
function stages(): Stage[] {
  const lines = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const out: Stage[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) out.push({ from: from[1]!, name: from[2] ?? '', lines: [] });
    else out.at(-1)?.lines.push(line);
  }
  return out;
}

const stage = (name: string) => stages().find((s) => s.name === name)!;
/** Sources of `COPY` lines from the build context (not --from=). */
const contextCopies = (s: Stage) =>
  s.lines.filter((l) => /^COPY\s/i.test(l) && !/--from=/.test(l)).flatMap((l) => l.split(/\s+/).slice(1, -1));

test('the stages: build, comfyui on COMFYUI_IMAGE, and the worker alone as the default (last) target', () => {
  expect(stages().map((s) => s.name)).toEqual(['build', 'comfyui', 'worker']);
  expect(stage('comfyui').from).toBe('${COMFYUI_IMAGE}');
  expect(dockerfile).toMatch(/^ARG COMFYUI_IMAGE=\S+/m);
  expect(stage('comfyui').lines).toContain('CMD ["/app/docker/start.sh"]');
  for (const name of ['comfyui', 'worker']) {
    expect(stage(name).lines.some((l) => /^HEALTHCHECK .*CMD \["node", "\/app\/docker\/healthcheck\.js"\]$/.test(l))).toBe(true);
  }
});

test('the build stage copies every folder the build compiles, and every copied path exists', () => {
  const include = (JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include;
  const copied = contextCopies(stage('build'));
  for (const folder of include) expect(copied).toContain(folder);
  for (const s of stages()) for (const source of contextCopies(s)) expect(fs.existsSync(path.join(ROOT, source))).toBe(true);
});

test('docker-compose.yml: the comfyui target, a GPU, the database on a volume, time to stop', () => {
  const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'));
  const service = compose.services['comfyui-worker'];
  expect(service.build.target).toBe('comfyui');
  expect(stages().map((s) => s.name)).toContain(service.build.target);
  expect(service.build.platforms).toEqual(['linux/amd64']);
  expect(service.deploy.resources.reservations.devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
  expect(service.volumes).toContain('worker-data:/data');
  expect(Object.keys(compose.volumes)).toContain('worker-data');
  expect(dockerfile).toContain('SQLITE_DB_PATH=/data/comfyui_jobs.db');
  expect(service.stop_grace_period).toBe('45s');
});
