import type { JobOutput, JobResult } from '../../jobs/types';
import { toWorkerComfyError, toWorkerComfyOutput } from './output';

const timings = {} as JobResult['timings'];
const result = (outputs: JobOutput[], warnings: string[] = []): JobResult => ({ outputs, warnings, timings });
const data = (o: JobOutput) => (o.blob === undefined ? undefined : `b64-${o.blob}`);

describe('worker-comfyui output', () => {
  test('images as {filename, type: base64, data}; every other kind under its own key', () => {
    const out = toWorkerComfyOutput(
      result([
        { node_id: '9', output_type: 'images', filename: 'a.png', subfolder: '', type: 'output', mimetype: 'image/png', blob: 0 },
        {
          node_id: '12',
          output_type: 'gifs',
          filename: 'v.mp4',
          subfolder: 'clips',
          type: 'output',
          mimetype: 'video/mp4',
          blob: 1,
        },
        { node_id: '13', output_type: 'audio', filename: 'a.flac', subfolder: '', type: 'output', url: 'https://s3/a.flac' },
        { node_id: '14', output_type: 'text', value: 'hello' },
      ]),
      data,
    );
    expect(out).toEqual({
      images: [{ node_id: '9', filename: 'a.png', type: 'base64', data: 'b64-0', mimetype: 'image/png' }],
      gifs: [{ node_id: '12', filename: 'v.mp4', type: 'base64', data: 'b64-1', subfolder: 'clips', mimetype: 'video/mp4' }],
      audio: [{ node_id: '13', filename: 'a.flac', type: 's3_url', data: 'https://s3/a.flac' }],
      text: [{ node_id: '14', type: 'text', data: 'hello' }],
    });
  });

  test('no outputs: success_no_images; warnings become errors; an undelivered file carries its error', () => {
    expect(toWorkerComfyOutput(result([]), data)).toEqual({ images: [], status: 'success_no_images' });
    const partial = toWorkerComfyOutput(
      result([{ node_id: '9', output_type: 'images', filename: 'big.png', error: 'too big' }], ['skipped node 5']),
      data,
    );
    expect(partial).toEqual({ images: [{ node_id: '9', filename: 'big.png', error: 'too big' }], errors: ['skipped node 5'] });
  });

  test('a node output key cannot overwrite the envelope keys', () => {
    const out = toWorkerComfyOutput(result([{ node_id: '3', output_type: 'status', value: 'x' }]), data);
    expect(out.status).toBeUndefined();
    expect(out.status_outputs).toEqual([{ node_id: '3', type: 'text', data: 'x' }]);
  });

  test('errors as worker-comfyui returns them', () => {
    expect(toWorkerComfyError({ code: 'execution_error', message: 'boom', status: 500, details: { node_id: '3' } })).toEqual({
      error: 'boom',
      details: { node_id: '3' },
    });
    expect(toWorkerComfyError({ code: 'timeout', message: 'late', status: 504 })).toEqual({ error: 'late' });
  });
});
