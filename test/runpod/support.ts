// Helpers of the RunPod door tests: a worker in this process against the simulator and the fake
// control plane, and the workflows and images the tests send.
import fs from 'node:fs';
import path from 'node:path';
import type { Workflow } from '../../worker/comfy/types';
import type { FakeRunpod } from '../support/fake-runpod';
import { TRACES_DIR } from '../support/traces';
import { startTestWorker, type TestWorker } from '../support/worker';

/** A real PNG (the one the recorded success run wrote), as a data URI and as bytes. */
export const INPUT_PNG = fs.readFileSync(path.join(TRACES_DIR, 'view_success_output.png'));
export const INPUT_DATA_URI = `data:image/png;base64,${INPUT_PNG.toString('base64')}`;

export async function startRunpodWorker(
  comfyUrl: string,
  fake: FakeRunpod,
  env: Record<string, string> = {},
  opts: { ready?: boolean; captureLogs?: boolean } = {},
): Promise<TestWorker> {
  return startTestWorker(comfyUrl, fake.env(env), opts.ready ?? true, { captureLogs: opts.captureLogs ?? false });
}

/** LoadImage(name) → ImageInvert → SaveImage(prefix): uses an uploaded input image. */
export function loadImageWorkflow(name: string, prefix = 'rp'): Workflow {
  return {
    '1': { class_type: 'LoadImage', inputs: { image: name }, _meta: { title: 'Load Image' } },
    '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
    '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: prefix }, _meta: { title: 'Save Image' } },
  };
}

/** EmptyImage (a batch of 4) → SaveAnimatedWEBP and VHS_VideoCombine (an .mp4 under `gifs`). */
export function animationWorkflow(): Workflow {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 32, height: 24, batch_size: 4, color: 0x3366ff } },
    '2': {
      class_type: 'SaveAnimatedWEBP',
      inputs: { images: ['1', 0], filename_prefix: 'anim', fps: 6, lossless: true, quality: 80, method: 'default' },
    },
    '3': {
      class_type: 'VHS_VideoCombine',
      inputs: {
        images: ['1', 0],
        frame_rate: 8,
        loop_count: 0,
        filename_prefix: 'clips/video',
        format: 'video/h264-mp4',
        pingpong: false,
        save_output: true,
      },
    },
  };
}

/** A CheckpointLoaderSimple-based graph naming `ckpt` (validated against the simulator's models). */
export function checkpointWorkflow(ckpt: string): Workflow {
  return {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: ckpt } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: 64, height: 64, batch_size: 1 } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a fox', clip: ['4', 1] } },
    '3': {
      class_type: 'KSampler',
      inputs: {
        seed: 1,
        steps: 3,
        cfg: 7,
        sampler_name: 'euler',
        scheduler: 'normal',
        denoise: 1,
        model: ['4', 0],
        positive: ['6', 0],
        negative: ['6', 0],
        latent_image: ['5', 0],
      },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: 'ckpt' } },
  };
}

/** The bytes of a file the simulator wrote. */
export function simFile(dataDir: string, type: string, subfolder: string, filename: string): Buffer {
  return fs.readFileSync(path.join(dataDir, type, subfolder, filename));
}
