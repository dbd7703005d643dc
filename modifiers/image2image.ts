// SD1.5 image-to-image: LoadImage → VAEEncode → KSampler, with the api-wrapper's keys and
// defaults. `input_image` is an http(s) URL (downloaded into ComfyUI) or the name of an image
// sent in `input.images`.
import { defineModifier, fieldSchemas as s, randomSeed } from './define';
import template from './image2image.json';

export default defineModifier({
  name: 'Image2Image',
  template,
  fields: {
    seed: { node: '3', input: 'seed', schema: s.seed, default: randomSeed },
    steps: { node: '3', input: 'steps', schema: s.steps, default: 20 },
    sampler_name: { node: '3', input: 'sampler_name', schema: s.name, default: 'dpmpp_2m' },
    scheduler: { node: '3', input: 'scheduler', schema: s.name, default: 'normal' },
    denoise: { node: '3', input: 'denoise', schema: s.denoise, default: 0.87 },
    prompt: { node: '6', input: 'text', schema: s.text, default: '' },
    negative_prompt: { node: '7', input: 'text', schema: s.text, default: '' },
    input_image: { node: '10', input: 'image', schema: s.text, default: '' },
    ckpt_name: { node: '14', input: 'ckpt_name', schema: s.name, default: 'v1-5-pruned-emaonly-fp16.safetensors' },
  },
});
