import { ModifierRegistry, RANDOM_INT } from './modifiers';

const registry = ModifierRegistry.load();

describe('ModifierRegistry', () => {
  test('finds every modifier file in the folder', () => {
    expect(registry.names()).toEqual(['Image2Image', 'Text2Image']);
  });

  test('Text2Image writes modifications into the SD1.5 graph, defaults elsewhere', () => {
    const wf = registry.apply('Text2Image', { prompt: 'a cat', width: 768, steps: 30, seed: 42 });
    expect(wf['6']!.inputs.text).toBe('a cat');
    expect(wf['7']!.inputs.text).toBe('');
    expect(wf['5']!.inputs).toMatchObject({ width: 768, height: 512, batch_size: 1 });
    expect(wf['3']!.inputs).toMatchObject({
      seed: 42,
      steps: 30,
      cfg: 8,
      sampler_name: 'euler',
      scheduler: 'normal',
      denoise: 1,
    });
    expect(wf['4']!.inputs.ckpt_name).toBe('v1-5-pruned-emaonly-fp16.safetensors');
    expect(wf['9']).toMatchObject({ class_type: 'SaveImage', inputs: { filename_prefix: 'image', images: ['8', 0] } });
  });

  test('the template is not changed by applying it', () => {
    registry.apply('Text2Image', { prompt: 'x' });
    expect(registry.apply('Text2Image', {})['6']!.inputs.text).toBe('');
  });

  test('random seed by default, different per request; __RANDOM_INT__ is kept for the later pass', () => {
    const a = registry.apply('Text2Image', {})['3']!.inputs.seed;
    const b = registry.apply('Text2Image', {})['3']!.inputs.seed;
    expect(typeof a).toBe('number');
    expect(a).not.toBe(b);
    expect(registry.apply('Text2Image', { seed: RANDOM_INT })['3']!.inputs.seed).toBe(RANDOM_INT);
  });

  test('Image2Image defaults and input_image', () => {
    const wf = registry.apply('image2image', { input_image: 'photo.png' });
    expect(wf['10']!.inputs.image).toBe('photo.png');
    expect(wf['3']!.inputs).toMatchObject({ sampler_name: 'dpmpp_2m', denoise: 0.87, latent_image: ['12', 0] });
  });

  test('a bad value names the modification', () => {
    expect(() => registry.apply('Text2Image', { width: 'wide' })).toThrow(/input\.modifications\.width/);
    expect(() => registry.apply('Text2Image', { steps: 0 })).toThrow(/input\.modifications\.steps/);
  });

  test('unknown modifier lists the known ones', () => {
    expect(() => registry.apply('Upscale', {})).toThrow('Unknown modifier: Upscale (known: Image2Image, Text2Image)');
  });
});
