// RunPod's internal URLs come as templates, e.g.
//   https://api.runpod.ai/v2/<endpoint>/job-take/$RUNPOD_POD_ID?gpu=<name>
//   https://api.runpod.ai/v2/<endpoint>/job-done/$RUNPOD_POD_ID/$ID?gpu=<name>
// `$RUNPOD_POD_ID` becomes the worker id, then `$ID` the worker id (job-take, ping) or the job id
// (job-done). Query parameters are appended with `&` when the template already has a `?`.

export function fill(template: string, workerId: string, id: string): string {
  return template.replaceAll('$RUNPOD_POD_ID', workerId).replaceAll('$ID', id);
}

export function withQuery(url: string, params: Record<string, string | undefined>): string {
  const parts = Object.entries(params)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  if (parts.length === 0) return url;
  return `${url}${url.includes('?') ? '&' : '?'}${parts.join('&')}`;
}

export interface RunpodUrls {
  take(jobInProgress: boolean): string;
  done(jobId: string): string;
  /** The job-stop long-poll (job-take's URL with /job-stop/), when the template has /job-take/. */
  stop: string | undefined;
  /** The heartbeat URL without its query (the heartbeat adds job_id and runpod_version). */
  ping: string | undefined;
}

export function runpodUrls(
  templates: { getJob: string; postOutput: string; ping: string | undefined },
  workerId: string,
): RunpodUrls {
  const take = fill(templates.getJob, workerId, workerId);
  return {
    take: (jobInProgress) => withQuery(take, { job_in_progress: jobInProgress ? '1' : '0' }),
    done: (jobId) => withQuery(fill(templates.postOutput, workerId, jobId), { isStream: 'false' }),
    stop: take.includes('/job-take/') ? take.replace('/job-take/', '/job-stop/') : undefined,
    ping: templates.ping === undefined ? undefined : fill(templates.ping, workerId, workerId),
  };
}
