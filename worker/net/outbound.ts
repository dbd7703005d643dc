// The HTTP client for URLs that clients give us (input images, webhooks). It refuses private
// addresses at connect time and on every redirect (unless ALLOW_PRIVATE_URLS), caps response sizes
// and honours HTTP(S)_PROXY / NO_PROXY like other tools (never used for ComfyUI on loopback).
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import axios, { type AxiosInstance } from 'axios';
import { guardedLookup, isPrivateAddress } from './address-guard';
import { deadline } from './deadline';

export interface OutboundOptions {
  allowPrivate: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Whether HTTP(S)_PROXY applies to this URL (NO_PROXY honoured), as axios decides it. */
export function proxyApplies(url: URL, env: NodeJS.ProcessEnv): boolean {
  const proxy = url.protocol === 'https:' ? (env.HTTPS_PROXY ?? env.https_proxy) : (env.HTTP_PROXY ?? env.http_proxy);
  if (!proxy) return false;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? '').split(/[,\s]+/).filter(Boolean);
  const host = url.hostname.toLowerCase();
  return !noProxy.some((entry) => {
    if (entry === '*') return true;
    const bare = entry
      .replace(/:\d+$/, '')
      .replace(/^\*?\./, '')
      .toLowerCase();
    return host === bare || host.endsWith(`.${bare}`);
  });
}

/**
 * Every redirect is held to the rules of the first request: http(s) only, and no private IP
 * literal (host names are checked by the connect-time lookup). Throws to stop the redirect.
 */
export function checkRedirect(options: Record<string, unknown>, allowPrivate: boolean): void {
  const protocol = String(options.protocol ?? '');
  if (protocol !== 'http:' && protocol !== 'https:') throw new Error(`redirect to a ${protocol} URL refused`);
  const host = String(options.hostname ?? '').replace(/^\[|\]$/g, '');
  if (!allowPrivate && net.isIP(host) !== 0 && isPrivateAddress(host))
    throw new Error(`redirect to private address ${host} refused`);
}

export function createOutboundClient(opts: OutboundOptions): AxiosInstance {
  const env = opts.env ?? process.env;
  const lookup = opts.allowPrivate ? undefined : guardedLookup;
  // The proxy itself is usually on a private network: connections to it are not guarded.
  const toProxy = { httpAgent: new http.Agent({ keepAlive: true }), httpsAgent: new https.Agent({ keepAlive: true }) };
  const client = axios.create({
    httpAgent: new http.Agent({ keepAlive: true, lookup }),
    httpsAgent: new https.Agent({ keepAlive: true, lookup }),
    maxRedirects: 5,
    validateStatus: () => true,
    beforeRedirect: (options: Record<string, unknown>) => checkRedirect(options, opts.allowPrivate),
  });
  // With a proxy the connect-time guard would judge the proxy's address instead of the target's;
  // the admission check (assertPublicHttpUrl) still applies in that case.
  client.interceptors.request.use((config) => {
    if (opts.allowPrivate) return config;
    const target = new URL(config.url ?? '', config.baseURL);
    // Through a proxy only the target itself was checked (when the request arrived): a redirect
    // could lead anywhere the proxy can reach, so redirects are not followed there.
    if (proxyApplies(target, env)) return { ...config, ...toProxy, maxRedirects: 0 };
    config.proxy = false;
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (net.isIP(host) !== 0 && isPrivateAddress(host)) throw new Error(`refusing to connect to private address ${host}`);
    return config;
  });
  return client;
}

export interface Download {
  bytes: Buffer;
  contentType: string | undefined;
}

/** GETs a URL into memory, refusing bodies over maxBytes. Throws an Error with a readable reason. */
export async function download(
  client: AxiosInstance,
  url: string,
  limits: { maxBytes: number; timeoutMs: number; signal?: AbortSignal },
): Promise<Download> {
  let res;
  // axios' own timeout stops counting once the response starts: this one covers the whole body.
  const limit = deadline(limits.timeoutMs, limits.signal);
  try {
    res = await client.get<ArrayBuffer>(url, {
      responseType: 'arraybuffer',
      maxContentLength: limits.maxBytes,
      timeout: limits.timeoutMs,
      signal: limit.signal,
    });
  } catch (err) {
    if (limit.expired) throw new Error(`took longer than ${limits.timeoutMs / 1000} s`);
    const message = err instanceof Error ? err.message : String(err);
    if (/maxContentLength/.test(message)) throw new Error(`larger than the ${limits.maxBytes}-byte limit`);
    throw new Error(message);
  } finally {
    limit.done();
  }
  if (res.status < 200 || res.status >= 300) throw new Error(`answered HTTP ${res.status}`);
  const type = res.headers['content-type'];
  return { bytes: Buffer.from(res.data), contentType: typeof type === 'string' ? type : undefined };
}
