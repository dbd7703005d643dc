// Input images for tests: PNGs the simulator's LoadImage accepts, of a chosen size.
import fs from 'node:fs';
import path from 'node:path';
import { startSimulator } from '../../simulator';
import { saveWorkflow } from './workflows';
import { callJson, postJson, until } from './worker';

/** A PNG the simulator wrote, padded (an ancillary chunk) to about `size` bytes. */
export async function paddedPng(size: number): Promise<Buffer> {
  const sim = await startSimulator({ outputPaddingBytes: size });
  try {
    const res = await postJson(`${sim.url}/prompt`, { prompt: saveWorkflow('padded') });
    const id = res.body.prompt_id as string;
    await until(async () => (await callJson('GET', `${sim.url}/history/${id}`)).body[id] !== undefined, 10_000, 'padded PNG');
    const file = fs.readdirSync(path.join(sim.dataDir, 'output')).find((f) => f.startsWith('padded'))!;
    return fs.readFileSync(path.join(sim.dataDir, 'output', file));
  } finally {
    await sim.close();
  }
}

/** A workflow that loads the uploaded image `name` and saves it again. */
export function loadWorkflow(name: string, prefix: string) {
  return {
    '1': { class_type: 'LoadImage', inputs: { image: name } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: prefix } },
  };
}
