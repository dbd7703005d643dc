// ComfyUI's default SD1.5 text-to-image graph, with the api-wrapper's keys and defaults.
import { defineModifier, fieldSchemas as s, randomSeed } from './define';
import template from './text2image.json';

export default defineModifier({
  name: 'Text2Image',
  template,
  fields: {
    seed: { node: '3', input: 'seed', schema: s.seed, default: randomSeed },
    steps: { node: '3', input: 'steps', schema: s.steps, default: 20 },
    sampler_name: { node: '3', input: 'sampler_name', schema: s.name, default: 'euler' },
    scheduler: { node: '3', input: 'scheduler', schema: s.name, default: 'normal' },
    denoise: { node: '3', input: 'denoise', schema: s.denoise, default: 1.0 },
    ckpt_name: { node: '4', input: 'ckpt_name', schema: s.name, default: 'v1-5-pruned-emaonly-fp16.safetensors' },
    width: { node: '5', input: 'width', schema: s.size, default: 512 },
    height: { node: '5', input: 'height', schema: s.size, default: 512 },
    prompt: { node: '6', input: 'text', schema: s.text, default: '' },
    negative_prompt: { node: '7', input: 'text', schema: s.text, default: '' },
  },
});
