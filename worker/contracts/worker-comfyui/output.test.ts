import type { JobOutput, JobResult } from '../../jobs/types';
import { toWorkerComfyError, toWorkerComfyOutput } from './output';

const timings = {} as JobResult['timings'];
const result = (outputs: JobOutput[], warnings: string[] = []): JobResult => ({ outputs, warnings, timings });
const data = (o: JobOutput) => (o.blob === undefined ? undefined : `b64-${o.blob}`);

describe('worker-comfyui output', () => {
  test('every file in images as {filename, type: base64 | s3_url, data} (other kinds marked); text under its own key', () => {
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
      images: [
        { node_id: '9', filename: 'a.png', type: 'base64', data: 'b64-0', mimetype: 'image/png' },
        {
          node_id: '12',
          output_type: 'gifs',
          filename: 'v.mp4',
          type: 'base64',
          data: 'b64-1',
          subfolder: 'clips',
          mimetype: 'video/mp4',
        },
        { node_id: '13', output_type: 'audio', filename: 'a.flac', type: 's3_url', data: 'https://s3/a.flac' },
      ],
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
    expect(
      toWorkerComfyError({
        code: 'execution_error',
        message: 'boom',
        status: 500,
        details: { node_id: '3', node_type: 'KSampler', exception_message: 'CUDA out of memory' },
      }),
    ).toEqual({
      error: 'Job processing failed',
      details: ['Workflow execution error: Node Type: KSampler, Node ID: 3, Message: CUDA out of memory'],
    });
    expect(toWorkerComfyError({ code: 'output_error', message: 'S3 down', status: 500, details: { n: 1 } })).toEqual({
      error: 'S3 down',
      details: { n: 1 },
    });
    expect(toWorkerComfyError({ code: 'timeout', message: 'late', status: 504 })).toEqual({ error: 'late' });
  });
});
