// Simulator options: models, output padding, custom node classes, per-class delays, the CLI.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startSimulator, type SimNodeDef } from '../../simulator';
import { decodePng } from '../../simulator/png';
import { WsRecorder, getJson, http, newClientId, postJson, submit, waitHistory } from '../contract/target';
import { chainWorkflow, saveWorkflow, txt2img } from './workflows';

const ROOT = resolve(__dirname, '../..');

/** Walks PNG chunks, checking each CRC; returns the chunk types. */
function pngChunks(buf: Buffer): string[] {
  const { crc32 } = require('node:zlib') as { crc32(d: Buffer): number };
  const types: string[] = [];
  for (let p = 8; p < buf.length;) {
    const len = buf.readUInt32BE(p);
    const body = buf.subarray(p + 4, p + 8 + len);
    if (crc32(body) >>> 0 !== buf.readUInt32BE(p + 8 + len)) throw new Error('bad crc');
    types.push(buf.toString('latin1', p + 4, p + 8));
    p += 12 + len;
  }
  return types;
}

describe('simulator options', () => {
  test('models are the checkpoint list in object_info and /models/checkpoints, and are validated', async () => {
    const sim = await startSimulator({ models: ['a.safetensors', 'b.safetensors'] });
    try {
      const info = await getJson<Record<string, { input: { required: Record<string, unknown[]> } }>>(
        sim.url,
        '/object_info/CheckpointLoaderSimple',
      );
      expect(info['CheckpointLoaderSimple']?.input.required['ckpt_name']?.[0]).toEqual(['a.safetensors', 'b.safetensors']);
      expect(await getJson(sim.url, '/models/checkpoints')).toEqual(['a.safetensors', 'b.safetensors']);
      expect(await getJson(sim.url, '/api/models/loras')).toEqual([]);
      expect((await http(`${sim.url}/models/nope`)).status).toBe(404);
      const bad = await postJson(sim.url, '/prompt', { prompt: txt2img({ steps: 1, seed: 1, ckpt: 'missing.safetensors' }) });
      const body = JSON.parse(bad.text) as { node_errors: Record<string, { errors: Array<{ type: string; details: string }> }> };
      expect(bad.status).toBe(400);
      expect(body.node_errors['4']?.errors[0]).toMatchObject({
        type: 'value_not_in_list',
        details: "ckpt_name: 'missing.safetensors' not in ['a.safetensors', 'b.safetensors']",
      });
      const ok = await submit(sim.url, txt2img({ steps: 1, seed: 1, ckpt: 'b.safetensors' }), null);
      const h = (await waitHistory(sim.url, ok)) as Record<string, { status: { status_str: string } }>;
      expect(h[ok]?.status.status_str).toBe('success');
    } finally {
      await sim.close();
    }
  });

  test('outputPaddingBytes makes bigger PNGs that are still valid', async () => {
    const plain = await startSimulator();
    const padded = await startSimulator({ outputPaddingBytes: 200000 });
    try {
      const sizes: number[] = [];
      for (const sim of [plain, padded]) {
        const p = await submit(sim.url, saveWorkflow('pad'), null);
        await waitHistory(sim.url, p);
        const bytes = (await http(`${sim.url}/view?filename=pad_00001_.png&type=output`)).bytes;
        const png = decodePng(bytes);
        expect(png && [png.width, png.height]).toEqual([64, 64]);
        expect(pngChunks(bytes)[0]).toBe('IHDR');
        expect(pngChunks(bytes).at(-1)).toBe('IEND');
        sizes.push(bytes.length);
      }
      expect((sizes[1] ?? 0) - (sizes[0] ?? 0)).toBe(200000 + 12);
    } finally {
      await plain.close();
      await padded.close();
    }
  });

  test('extraNodes: a custom output node shows up, validates, runs and reports its UI output', async () => {
    const calls: Array<Record<string, unknown>> = [];
    const videoCombine: SimNodeDef = {
      schema: {
        input: {
          required: {
            images: ['IMAGE'],
            frame_rate: ['FLOAT', { default: 8, min: 1, max: 60 }],
            format: [['video/h264-mp4', 'image/gif'], {}],
          },
        },
        output: ['VHS_FILENAMES'],
        name: 'VHS_VideoCombine',
        display_name: 'Video Combine',
        category: 'video',
        output_node: true,
      },
      run(ctx) {
        calls.push({ ...ctx.inputs, nodeId: ctx.nodeId });
        ctx.writeFile('output', 'vid', 'clip_00001.mp4', Buffer.from('not really an mp4'));
        return {
          ui: {
            gifs: [{ filename: 'clip_00001.mp4', subfolder: 'vid', type: 'output', format: 'video/h264-mp4', frame_rate: 8 }],
          },
        };
      },
    };
    const broken: SimNodeDef = {
      schema: { input: { required: { images: ['IMAGE'] } }, output: [], name: 'Broken', output_node: true },
      run() {
        throw new Error('codec exploded');
      },
    };
    const sim = await startSimulator({ extraNodes: { VHS_VideoCombine: videoCombine, Broken: broken } });
    try {
      const info = await getJson<Record<string, Record<string, unknown>>>(sim.url, '/object_info/VHS_VideoCombine');
      expect(info['VHS_VideoCombine']).toMatchObject({
        name: 'VHS_VideoCombine',
        output_node: true,
        input_order: { required: ['images', 'frame_rate', 'format'] },
      });
      const images = { '1': { class_type: 'EmptyImage', inputs: { width: 8, height: 8, batch_size: 4, color: 0 } } };
      const bad = await postJson(sim.url, '/prompt', {
        prompt: {
          ...images,
          '2': { class_type: 'VHS_VideoCombine', inputs: { images: ['1', 0], frame_rate: 100, format: 'image/gif' } },
        },
      });
      expect(bad.status).toBe(400);
      expect(bad.text).toContain('value_bigger_than_max');
      const id = newClientId();
      const ws = await WsRecorder.open(sim.url, id);
      const p = await submit(
        sim.url,
        {
          ...images,
          '2': { class_type: 'VHS_VideoCombine', inputs: { images: ['1', 0], frame_rate: 8, format: 'video/h264-mp4' } },
        },
        id,
      );
      const msgs = await ws.untilDone(p, 0);
      expect(msgs.find((m) => m.type === 'executed')?.data['output']).toEqual({
        gifs: [{ filename: 'clip_00001.mp4', subfolder: 'vid', type: 'output', format: 'video/h264-mp4', frame_rate: 8 }],
      });
      expect(calls[0]).toMatchObject({ frame_rate: 8, format: 'video/h264-mp4', nodeId: '2' });
      expect(calls[0]?.['images']).toMatchObject({ batch: 4, width: 8, height: 8 });
      expect(existsSync(join(sim.dataDir, 'output', 'vid', 'clip_00001.mp4'))).toBe(true);
      expect((await http(`${sim.url}/view?filename=clip_00001.mp4&subfolder=vid&type=output`)).headers.get('content-type')).toBe(
        'video/mp4',
      );

      const from = ws.messages.length;
      const q = await submit(sim.url, { ...images, '2': { class_type: 'Broken', inputs: { images: ['1', 0] } } }, id);
      const err = (await ws.untilDone(q, from)).find((m) => m.type === 'execution_error');
      // Node 1 is identical to the previous prompt's, so it is served from cache, not executed.
      expect(err?.data).toMatchObject({
        node_id: '2',
        node_type: 'Broken',
        exception_type: 'Exception',
        exception_message: 'codec exploded\n',
        executed: [],
        current_outputs: ['1', '2'],
      });
      await ws.close();
    } finally {
      await sim.close();
    }
  });

  test('nodeDelayMs per class_type slows only that class', async () => {
    const sim = await startSimulator({ nodeDelayMs: { SaveImage: 300 } });
    try {
      const t0 = Date.now();
      const p = await submit(sim.url, saveWorkflow('slow'), null);
      await waitHistory(sim.url, p);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
      // The other classes, without timing them: with SaveImage held for a minute (longer than the
      // wait below), EmptyImage and ImageInvert still run to their end before it, and the prompt
      // then waits in SaveImage.
      sim.setNodeDelay({ SaveImage: 60_000 });
      const id = newClientId();
      const ws = await WsRecorder.open(sim.url, id);
      const q = await submit(sim.url, chainWorkflow('held'), id);
      await ws.waitFor((m) => m.type === 'executing' && m.data['prompt_id'] === q && m.data['node'] === '3', 0);
      const executing = ws.messages.filter((m) => m.type === 'executing' && m.data['prompt_id'] === q).map((m) => m.data['node']);
      expect(executing).toEqual(['1', '2', '3']);
      expect(await getJson(sim.url, `/history/${q}`)).toEqual({});
      await ws.close();
    } finally {
      await sim.close();
    }
  });

  test('cli starts a simulator and it answers /system_stats', async () => {
    // TypeScript 7 builds the project in well under a second; the CLI runs from dist/ like in use.
    spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], {
      cwd: ROOT,
    });
    const cli = join(ROOT, 'dist/simulator/cli.js');
    expect(existsSync(cli)).toBe(true);
    const child = spawn(
      process.execPath,
      [cli, '--port', '0', '--host', '127.0.0.1', '--node-delay-ms', '1', '--models', 'x.safetensors,y.safetensors'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const url = await new Promise<string>((res, rej) => {
        let out = '';
        const timer = setTimeout(() => rej(new Error('cli did not start')), 10000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m?.[1]) {
            clearTimeout(timer);
            res(m[1]);
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          rej(new Error(`cli exited ${String(code)}`));
        });
      });
      const stats = await getJson<{ system: { comfyui_version: string; argv: string[] } }>(url, '/system_stats');
      expect(stats.system.comfyui_version).toBe('0.3.65');
      expect(stats.system.argv).toContain(new URL(url).port);
      expect(await getJson(url, '/models/checkpoints')).toEqual(['x.safetensors', 'y.safetensors']);
      expect(readFileSync(cli, 'utf8')).toContain('require.main === module');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
