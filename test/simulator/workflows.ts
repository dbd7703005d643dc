// Small API-format workflows for simulator tests.

export type Workflow = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

/** EmptyImage -> SaveImage. */
export function saveWorkflow(prefix: string, color = 0x102030, size = 64, batch = 1): Workflow {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: size, height: size, batch_size: batch, color } },
    '2': { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: prefix } },
  };
}

/** EmptyImage -> ImageInvert -> SaveImage (the invert step is the one tests slow down). */
export function chainWorkflow(prefix: string, color = 0x405060): Workflow {
  return {
    '1': { class_type: 'EmptyImage', inputs: { width: 32, height: 32, batch_size: 1, color } },
    '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] } },
    '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: prefix } },
  };
}

/** The usual text-to-image graph. */
export function txt2img(opts: {
  steps: number;
  seed: number;
  ckpt?: string;
  prefix?: string;
  width?: number;
  height?: number;
}): Workflow {
  return {
    '4': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: opts.ckpt ?? 'v1-5-pruned-emaonly-fp16.safetensors' } },
    '6': { class_type: 'CLIPTextEncode', inputs: { text: 'a lighthouse at dusk', clip: ['4', 1] } },
    '7': { class_type: 'CLIPTextEncode', inputs: { text: 'blurry', clip: ['4', 1] } },
    '5': { class_type: 'EmptyLatentImage', inputs: { width: opts.width ?? 512, height: opts.height ?? 512, batch_size: 1 } },
    '3': {
      class_type: 'KSampler',
      inputs: {
        model: ['4', 0],
        seed: opts.seed,
        steps: opts.steps,
        cfg: 8,
        sampler_name: 'euler',
        scheduler: 'normal',
        positive: ['6', 0],
        negative: ['7', 0],
        latent_image: ['5', 0],
        denoise: 1,
      },
    },
    '8': { class_type: 'VAEDecode', inputs: { samples: ['3', 0], vae: ['4', 2] } },
    '9': { class_type: 'SaveImage', inputs: { images: ['8', 0], filename_prefix: opts.prefix ?? 'txt2img' } },
  };
}
