#!/usr/bin/env node
// `comfyui-worker`: the command-line client (and `serve`), compiled to dist/ by `npm run build`.
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const built = path.resolve(__dirname, '..', 'dist', 'cli', 'main.js');
if (!fs.existsSync(built)) {
  process.stderr.write(`comfyui-worker: not built yet (${built} is missing): run \`npm run build\` first\n`);
  process.exit(1);
}
require(built).main();
