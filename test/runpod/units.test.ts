// The RunPod door's small pieces on their own: URL templates, the SDK's result mapping, the
// hosted API's job view, the inbox.
import fs from 'node:fs';
import type { JobRecord } from '../../worker/jobs/types';
import { Inbox } from '../../worker/doors/runpod/inbox';
import { jobDoneBody, jobView } from '../../worker/doors/runpod/result';
import { fill, runpodUrls, withQuery } from '../../worker/doors/runpod/urls';
import { tempDir } from '../support/tmp';

describe('URL templates', () => {
  test('$RUNPOD_POD_ID then $ID; query appended with & or ?', () => {
    expect(fill('https://api.runpod.ai/v2/e/job-done/$RUNPOD_POD_ID/$ID?gpu=A100', 'pod', 'job-1')).toBe(
      'https://api.runpod.ai/v2/e/job-done/pod/job-1?gpu=A100',
    );
    expect(withQuery('https://x/ping/p', { a: '1', b: undefined, c: 'x y' })).toBe('https://x/ping/p?a=1&c=x%20y');
    expect(withQuery('https://x/ping/p?gpu=A', {})).toBe('https://x/ping/p?gpu=A');
    const urls = runpodUrls(
      {
        getJob: 'https://r/v2/e/job-take/$RUNPOD_POD_ID?gpu=G',
        postOutput: 'https://r/v2/e/job-done/$RUNPOD_POD_ID/$ID',
        ping: undefined,
      },
      'w1',
    );
    expect(urls.take(false)).toBe('https://r/v2/e/job-take/w1?gpu=G&job_in_progress=0');
    expect(urls.take(true)).toBe('https://r/v2/e/job-take/w1?gpu=G&job_in_progress=1');
    expect(urls.done('j 1')).toBe('https://r/v2/e/job-done/w1/j 1?isStream=false');
    expect(urls.stop).toBe('https://r/v2/e/job-stop/w1?gpu=G');
    expect(urls.ping).toBeUndefined();
    // The SDK's older templates name the worker $ID in job-take.
    expect(
      runpodUrls({ getJob: 'https://r/take/$ID', postOutput: 'https://r/done/$ID', ping: 'https://r/ping/$ID' }, 'w2'),
    ).toMatchObject({
      stop: undefined,
      ping: 'https://r/ping/w2',
    });
  });
});

describe("the SDK's job-done body", () => {
  test.each([
    [{ images: [{ filename: 'a.png' }] }, false, { output: { images: [{ filename: 'a.png' }] } }],
    [{ error: 'boom' }, false, { error: 'boom' }],
    [{ error: 'Job processing failed', details: ['x'] }, false, { output: { details: ['x'] }, error: 'Job processing failed' }],
    [{ images: [], status: 'success_no_images' }, true, { output: { images: [], status: 'success_no_images' }, stopPod: true }],
    [{ error: 'boom', refresh_worker: true }, false, { error: 'boom', stopPod: true }],
    [{}, false, {}],
  ])('%j (refresh %s) → %j', (output, refresh, body) => {
    expect(jobDoneBody(output, refresh)).toEqual(body);
  });
});

describe("the hosted API's job view", () => {
  const base: JobRecord = {
    id: 'j',
    seq: 1,
    source: 'runpod',
    contract: 'worker-comfyui',
    sync: false,
    status: 'pending',
    spec: {
      workflow: {},
      images: [],
      includeTempOutputs: false,
      forceBase64: false,
      includeComfyResponse: false,
      allowPartial: false,
    },
    promptId: null,
    backend: null,
    attempts: 0,
    result: null,
    error: null,
    createdAt: 100,
    startedAt: null,
    completedAt: null,
  };
  const inline = () => 'AAAA';
  test('statuses and timings', () => {
    expect(jobView(base, inline, undefined)).toEqual({ id: 'j', status: 'IN_QUEUE' });
    expect(jobView({ ...base, status: 'running', startedAt: 100.25 }, inline, undefined)).toEqual({
      id: 'j',
      status: 'IN_PROGRESS',
      delayTime: 250,
    });
    const timings = {
      queued_at_ms: 0,
      started_at_ms: 0,
      queue_ms: 0,
      preprocess_ms: 0,
      generation_ms: 0,
      postprocess_ms: 0,
      completed_at_ms: 0,
      total_ms: 0,
    };
    const completed: JobRecord = {
      ...base,
      status: 'completed',
      startedAt: 100.5,
      completedAt: 102,
      result: { outputs: [{ node_id: '9', output_type: 'images', filename: 'a.png', blob: 0 }], warnings: [], timings },
    };
    expect(jobView(completed, inline, undefined)).toEqual({
      id: 'j',
      status: 'COMPLETED',
      delayTime: 500,
      executionTime: 1500,
      output: { images: [{ node_id: '9', filename: 'a.png', type: 'base64', data: 'AAAA' }] },
    });
    const timedOut: JobRecord = {
      ...base,
      status: 'failed',
      startedAt: 101,
      completedAt: 102,
      error: { code: 'timeout', message: 'late', status: 504 },
    };
    expect(jobView(timedOut, inline, undefined)).toMatchObject({ status: 'TIMED_OUT', error: 'late' });
    const cancelled: JobRecord = {
      ...base,
      status: 'cancelled',
      completedAt: 100.1,
      error: { code: 'cancelled', message: 'gone', status: 499 },
    };
    expect(jobView(cancelled, inline, undefined)).toEqual({ id: 'j', status: 'CANCELLED', delayTime: 100, error: 'gone' });
  });
});

test('the inbox keeps taken jobs across instances, oldest first, and skips what it cannot read', () => {
  const dir = tempDir('inbox-');
  const inbox = new Inbox(dir);
  inbox.add('b/2', 2_000);
  inbox.add('a', 1_000);
  fs.writeFileSync(`${dir}/broken.json`, '{');
  const bad: string[] = [];
  expect(new Inbox(dir).list((file) => bad.push(file)).map((e) => e.id)).toEqual(['a', 'b/2']);
  expect(bad).toEqual([`${dir}/broken.json`]);
  inbox.remove('a');
  inbox.remove('a');
  expect(inbox.has('a')).toBe(false);
  expect(inbox.has('b/2')).toBe(true);
});
