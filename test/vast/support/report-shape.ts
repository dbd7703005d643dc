// Checks a recorded /worker_status/ or /delete_requests/ body against the reference, field for
// field: names, order, and Python's int/float distinction in the raw text.

export const STATUS_FIELDS = [
  'id',
  'mtoken',
  'version',
  'loadtime',
  'cur_load',
  'rej_load',
  'new_load',
  'error_msg',
  'max_perf',
  'cur_perf',
  'cur_capacity',
  'max_capacity',
  'num_requests_working',
  'num_requests_recieved',
  'additional_disk_usage',
  'working_request_idxs',
  'url',
];

const FLOAT_FIELDS = [
  'loadtime',
  'cur_load',
  'rej_load',
  'new_load',
  'max_perf',
  'cur_perf',
  'cur_capacity',
  'max_capacity',
  'additional_disk_usage',
];
const INT_FIELDS = ['id', 'num_requests_working', 'num_requests_recieved'];
const STRING_FIELDS = ['mtoken', 'version', 'error_msg', 'url'];

const PY_FLOAT = /^-?(\d+\.\d+(e[+-]\d\d+)?|\d(\.\d+)?e[+-]\d\d+)$/;
const PY_INT = /^-?\d+$/;

/** The raw token of a top-level scalar field in Python's `{"a": 1, "b": 2.0}` text. */
export function rawToken(raw: string, field: string): string | undefined {
  return new RegExp(`"${field}": (-?[0-9][0-9.e+-]*|null|true|false)`).exec(raw)?.[1];
}

/** Problems with a /worker_status/ body; [] when it matches the reference. */
export function statusShapeProblems(raw: string): string[] {
  const problems: string[] = [];
  const body = JSON.parse(raw) as Record<string, unknown>;
  const keys = Object.keys(body);
  if (keys.join(',') !== STATUS_FIELDS.join(',')) problems.push(`fields ${keys.join(',')}`);
  for (const f of FLOAT_FIELDS)
    if (!PY_FLOAT.test(rawToken(raw, f) ?? '')) problems.push(`${f} not a float: ${rawToken(raw, f)}`);
  for (const f of INT_FIELDS) if (!PY_INT.test(rawToken(raw, f) ?? '')) problems.push(`${f} not an int: ${rawToken(raw, f)}`);
  for (const f of STRING_FIELDS) if (typeof body[f] !== 'string') problems.push(`${f} not a string`);
  const idxs = body.working_request_idxs;
  if (!Array.isArray(idxs) || !idxs.every((i) => Number.isInteger(i))) problems.push('working_request_idxs not a list of ints');
  if (!raw.startsWith('{"id": ')) problems.push('not Python separators');
  return problems;
}

export const DELETE_ITEM_FIELDS = [
  'request_idx',
  'success',
  'status',
  'entered_queue_at',
  'work_started_at',
  'work_completed_at',
];
