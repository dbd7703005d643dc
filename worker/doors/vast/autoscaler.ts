// Talking to the Vast autoscaler: POSTs with PyWorker's delivery rules (the addresses of
// REPORT_ADDR tried in order until one succeeds; per address 3 attempts of at most 10 s each,
// 2 s apart; any non-2xx is a failure; no keep-alive) and the public key fetch (1, 2, 4, 8 s
// between 5 attempts). Its own HTTP agents, so report traffic never waits behind anything else.
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance } from 'axios';
import type { KeyObject } from 'node:crypto';
import type { Logger } from '../../observability/logger';
import { sleep } from '../../util/time';
import { parsePublicKey } from './signature';

export interface AutoscalerOptions {
  addrs: string[];
  logger: Logger;
  /** Per address; default 3. */
  attempts?: number;
  /** Per attempt; default 10 s. */
  timeoutMs?: number;
  /** After a failed attempt; default 2 s. */
  retryDelayMs?: number;
  /** Between public key attempts; default 1, 2, 4, 8 s (so 5 attempts). */
  pubkeyDelaysMs?: number[];
}

export const PUBKEY_ERROR = 'Failed to get Serverless public key after all retry attempts';

export class AutoscalerClient {
  readonly addrs: string[];
  private readonly logger: Logger;
  private readonly attempts: number;
  private readonly timeoutMs: number;
  private readonly retryDelayMs: number;
  private readonly pubkeyDelaysMs: number[];
  private readonly http: AxiosInstance;

  constructor(opts: AutoscalerOptions) {
    this.addrs = opts.addrs;
    this.logger = opts.logger;
    this.attempts = opts.attempts ?? 3;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retryDelayMs = opts.retryDelayMs ?? 2_000;
    this.pubkeyDelaysMs = opts.pubkeyDelaysMs ?? [1_000, 2_000, 4_000, 8_000];
    this.http = axios.create({
      // PyWorker: connection limit 8 (4 per host), no keep-alive.
      httpAgent: new http.Agent({ keepAlive: false, maxSockets: 4, maxTotalSockets: 8 }),
      httpsAgent: new https.Agent({ keepAlive: false, maxSockets: 4, maxTotalSockets: 8 }),
      validateStatus: () => true,
      maxRedirects: 0,
      transitional: { clarifyTimeoutError: true },
    });
  }

  /**
   * POSTs a JSON text to `path` on the first address that takes it. Resolves true when one
   * answered 2xx, false when every attempt failed (or the signal ended the wait).
   */
  async post(
    path: string,
    json: string,
    opts: { signal?: AbortSignal; skip?: (addr: string) => boolean } = {},
  ): Promise<boolean> {
    for (const addr of this.addrs) {
      if (opts.skip?.(addr)) continue;
      if (await this.postTo(addr, path, json, opts.signal)) return true;
    }
    return false;
  }

  /** POSTs to every address (the bootstrap failure report is fanned out, not failed over). */
  async postAll(path: string, json: string, signal?: AbortSignal): Promise<boolean> {
    const results = await Promise.all(this.addrs.map((addr) => this.postTo(addr, path, json, signal)));
    return results.some(Boolean);
  }

  private async postTo(addr: string, path: string, json: string, signal: AbortSignal | undefined): Promise<boolean> {
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (signal?.aborted) return false;
      const failure = await this.postOnce(`${addr}${path}`, json, signal);
      if (failure === undefined) return true;
      this.logger.warn({ url: `${addr}${path}`, attempt, error: failure }, 'autoscaler post failed');
      if (attempt < this.attempts) {
        try {
          await sleep(this.retryDelayMs, signal);
        } catch {
          return false;
        }
      }
    }
    return false;
  }

  /** Undefined on success, else what went wrong. */
  private async postOnce(url: string, json: string, signal: AbortSignal | undefined): Promise<string | undefined> {
    try {
      const res = await this.http.post(url, json, {
        headers: { 'content-type': 'application/json' },
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]) : AbortSignal.timeout(this.timeoutMs),
        responseType: 'text',
      });
      return res.status >= 200 && res.status < 300 ? undefined : `HTTP ${res.status}`;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /**
   * The autoscaler's PEM public key from `{addr}/pubkey/`, each address in order per attempt.
   * Rejects with PUBKEY_ERROR after the last attempt.
   */
  async fetchPublicKey(signal?: AbortSignal): Promise<KeyObject> {
    const delays = [...this.pubkeyDelaysMs, undefined];
    for (let attempt = 1; attempt <= delays.length; attempt++) {
      for (const addr of this.addrs) {
        const url = `${addr}/pubkey/`;
        try {
          const res = await this.http.get<string>(url, {
            signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]) : AbortSignal.timeout(this.timeoutMs),
            responseType: 'text',
          });
          if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
          const key = parsePublicKey(String(res.data));
          this.logger.info({ url, attempt }, 'autoscaler public key loaded');
          return key;
        } catch (err) {
          if (signal?.aborted) throw signal.reason;
          this.logger.warn({ url, attempt, error: (err as Error).message }, 'autoscaler public key fetch failed');
        }
      }
      const delay = delays[attempt - 1];
      if (delay !== undefined) await sleep(delay, signal);
    }
    throw new Error(PUBKEY_ERROR);
  }
}
