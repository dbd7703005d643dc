// Form bodies as aiohttp's request.post() sees them: multipart parts with a filename are files,
// other parts are text (or bytes for non-text content types); urlencoded bodies are text fields.
// The first value of a name wins, like MultiDict.get().

export interface FormFile {
  filename: string;
  contentType: string | null;
  data: Buffer;
}

export type FormValue = string | Buffer | FormFile;

export function isFormFile(v: FormValue | undefined): v is FormFile {
  return typeof v === 'object' && v !== null && !Buffer.isBuffer(v);
}

function param(header: string, name: string): string | null {
  const star = new RegExp(`;\\s*${name}\\*=([^;]+)`, 'i').exec(header);
  if (star?.[1]) {
    const m = /^([^']*)'[^']*'(.*)$/.exec(star[1].trim());
    if (m?.[2] !== undefined) {
      try {
        return decodeURIComponent(m[2]);
      } catch {
        return m[2];
      }
    }
  }
  const quoted = new RegExp(`;\\s*${name}="((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(header);
  if (quoted?.[1] !== undefined) return quoted[1].replace(/\\(.)/g, '$1');
  const bare = new RegExp(`;\\s*${name}=([^;\\s]+)`, 'i').exec(header);
  return bare?.[1] ?? null;
}

function parseMultipart(boundary: string, body: Buffer): Map<string, FormValue> {
  const out = new Map<string, FormValue>();
  const delim = Buffer.from(`--${boundary}`);
  let pos = body.indexOf(delim);
  while (pos >= 0) {
    pos += delim.length;
    if (body.subarray(pos, pos + 2).toString('latin1') === '--') break;
    if (body.subarray(pos, pos + 2).toString('latin1') === '\r\n') pos += 2;
    const headEnd = body.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) break;
    const headers = new Map<string, string>();
    for (const line of body.subarray(pos, headEnd).toString('utf8').split('\r\n')) {
      const c = line.indexOf(':');
      if (c > 0) headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
    }
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), headEnd + 4);
    const end = next < 0 ? body.length : next;
    const data = body.subarray(headEnd + 4, end);
    const disposition = ';' + (headers.get('content-disposition') ?? '').replace(/^[^;]*/, '');
    const name = param(disposition, 'name');
    const filename = param(disposition, 'filename');
    const ct = headers.get('content-type') ?? null;
    if (name !== null && !out.has(name)) {
      if (filename) out.set(name, { filename, contentType: ct, data: Buffer.from(data) });
      else if (ct === null || ct.startsWith('text/')) out.set(name, data.toString('utf8'));
      else out.set(name, Buffer.from(data));
    }
    if (next < 0) break;
    pos = next + 2;
  }
  return out;
}

export function parseForm(contentType: string | undefined, body: Buffer): Map<string, FormValue> {
  const ct = contentType ?? '';
  if (/^multipart\/form-data/i.test(ct)) {
    const boundary = param(';' + ct.replace(/^[^;]*/, ''), 'boundary');
    return boundary ? parseMultipart(boundary, body) : new Map();
  }
  if (/^application\/x-www-form-urlencoded/i.test(ct)) {
    const out = new Map<string, FormValue>();
    for (const [k, v] of new URLSearchParams(body.toString('utf8'))) if (!out.has(k)) out.set(k, v);
    return out;
  }
  return new Map();
}
