// The layering of the code, enforced by `npm run lint:layers` (part of `npm test`). Layers from
// the bottom up; a module may import its own layer and the ones below, never one above. The
// README's architecture section draws the same picture.
/** @type {Array<[name: string, path: string]>} */
const LAYERS = [
  ['leaf', '^(worker/(util|observability)/|worker/errors\\.ts$|modifiers/)'],
  ['settings', '^(worker/config\\.ts$|worker/secrets/|worker/net/)'],
  ['comfy', '^worker/comfy/'],
  ['delivery', '^worker/delivery/'],
  ['webhooks', '^worker/webhooks/'],
  ['jobs', '^worker/jobs/'],
  ['contracts', '^worker/contracts/'],
  ['benchmark', '^benchmark/'],
  ['doors', '^worker/doors/'],
  ['core', '^worker/core\\.ts$'],
  ['app', '^worker/app\\.ts$'],
  ['main', '^worker/main\\.ts$'],
];

const NOT_TESTS = '(\\.test\\.ts$|^test/)';

const upward = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `no-upward-from-${name}`,
  comment: `${name} (${path}) sits below ${LAYERS.slice(i + 1)
    .map(([n]) => n)
    .join(', ')}: it may not import them`,
  severity: 'error',
  from: { path, pathNot: NOT_TESTS },
  to: {
    path: LAYERS.slice(i + 1)
      .map(([, p]) => `(${p})`)
      .join('|'),
  },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-door-to-door',
      comment: 'A door may use the shared door modules (worker/doors/*.ts) but never another door',
      severity: 'error',
      from: { path: '^worker/doors/([^/]+)/', pathNot: NOT_TESTS },
      to: { path: '^worker/doors/([^/]+)/', pathNot: '^worker/doors/$1/' },
    },
    {
      name: 'no-contract-to-contract',
      comment: 'Contracts are independent of each other; shared parsing sits in worker/contracts/*.ts',
      severity: 'error',
      from: { path: '^worker/contracts/([^/]+)/', pathNot: NOT_TESTS },
      to: { path: '^worker/contracts/([^/]+)/', pathNot: ['^worker/contracts/$1/', '^worker/contracts/wrapper/modifiers\\.ts$'] },
    },
    {
      name: 'doors-never-talk-to-comfyui',
      comment: 'Doors and the benchmark see the backend through jobs/ (BackendStatus), never the ComfyUI client',
      severity: 'error',
      from: { path: '^(worker/doors/|benchmark/)', pathNot: NOT_TESTS },
      to: { path: '^worker/comfy/', pathNot: '^worker/comfy/types\\.ts$' },
    },
    {
      name: 'store-backends-stay-in-jobs',
      comment: 'Nothing above jobs/ knows which store backend is in use',
      severity: 'error',
      from: { pathNot: `^worker/(jobs|webhooks)/|${NOT_TESTS}` },
      to: {
        path: '(^worker/jobs/(sqlite|redis)/|^worker/webhooks/(sqlite|redis)-|^node_modules/(better-sqlite3|bullmq|ioredis)/)',
      },
    },
    {
      name: 'only-jobs-reach-the-store',
      comment: 'The store, the runner and the outbox are behind the job facade (jobs/queue.ts)',
      severity: 'error',
      from: { path: '^(worker/(doors|contracts)/|benchmark/)', pathNot: NOT_TESTS },
      to: {
        path: '^worker/(jobs/(store|sqlite/|redis/|runner|execute|recovery)|webhooks/(outbox|sqlite-|redis-|sender|progress))',
      },
    },
    {
      name: 'simulator-is-not-the-worker',
      comment: 'The simulator is a test tool: the worker loads it only through the --simulate dynamic import in main.ts',
      severity: 'error',
      from: { path: '^(worker|benchmark|modifiers)/', pathNot: NOT_TESTS },
      to: { path: '^simulator/', dependencyTypesNot: ['dynamic-import'] },
    },
    {
      name: 'simulator-uses-only-leaf-utilities',
      comment: 'The simulator stands in for ComfyUI: it may share leaf utilities, nothing of the worker',
      severity: 'error',
      from: { path: '^simulator/', pathNot: NOT_TESTS },
      to: { path: '^(worker/(?!util/)|benchmark/|modifiers/)' },
    },
    {
      name: 'cli-is-a-client',
      // swc (the parser here) does not mark type-only imports, so "types only" rests on oxlint's
      // consistent-type-imports making a type import an `import type`, which compiles to nothing.
      comment: "The command-line client (cli/) talks to a worker over HTTP: of the worker it may use contracts' types only",
      severity: 'error',
      from: { path: '^cli/', pathNot: NOT_TESTS },
      to: { path: '^(worker/|benchmark/|simulator/|modifiers/)', pathNot: '^worker/contracts/' },
    },
    {
      name: 'nothing-imports-the-cli',
      comment: 'The client sits beside the worker, above nothing',
      severity: 'error',
      from: { path: '^(worker|benchmark|modifiers|simulator)/', pathNot: NOT_TESTS },
      to: { path: '^cli/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { pathNot: NOT_TESTS },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    parser: 'swc',
    exclude: { path: '^(dist|node_modules)/' },
  },
};
