// Verifying the autoscaler's signature on a request: RSASSA-PKCS1-v1_5 with SHA-256 over a
// message built from auth_data with Python's json.dumps(..., indent=4, sort_keys=True).
// Which message production signs is not publicly settled (vast-cli issue 493), so the scheme is
// configurable (VAST_SIGNATURE_SCHEME):
//   url            {"url": <url>}                                   current vastai SDK
//   fields         cost, endpoint, reqnum, request_idx, url          pyworker lib/, late 2025
//   legacy-fields  cost, endpoint, reqnum, url                       2024 and older
//   any            the first of those that verifies (default)
//   off            no check (UNSECURED=true)
// Field-signed messages differ per request, so they also get PyWorker's replay guard; a
// url-signed one is the same for every request to this worker and cannot be guarded.
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { SignatureScheme } from '../../config';
import type { Logger } from '../../observability/logger';
import type { Envelope } from './envelope';
import { dumps, type PyJson } from '../../util/pyjson';

type MessageKind = 'url' | 'fields' | 'legacy-fields';

const FIELD_KEYS = ['cost', 'endpoint', 'reqnum', 'request_idx', 'url'];
const LEGACY_KEYS = ['cost', 'endpoint', 'reqnum', 'url'];
const UNSIGNED_KEYS = new Set(['signature', '__request_id']);

/** How far below the highest reqnum seen a field-signed request may be, and how many messages are remembered. */
const REPLAY_WINDOW = 100;

export type SignatureResult = { ok: true; kind: MessageKind | 'off' } | { ok: false; reason: string };

interface Candidate {
  kind: MessageKind;
  message: string;
}

/** The messages a scheme accepts for this auth_data, in the order they are tried. */
export function candidateMessages(scheme: SignatureScheme, envelope: Envelope): Candidate[] {
  const kinds: MessageKind[] = scheme === 'any' ? ['url', 'fields', 'legacy-fields'] : scheme === 'off' ? [] : [scheme];
  const out: Candidate[] = [];
  for (const kind of kinds) {
    if (kind === 'url') {
      out.push({ kind, message: dumps({ url: envelope.auth.url }, { indent: 4, sortKeys: true }) });
      continue;
    }
    const raw = envelope.rawAuth();
    out.push({ kind, message: dumps(pick(raw, kind === 'fields' ? FIELD_KEYS : LEGACY_KEYS), { indent: 4, sortKeys: true }) });
    // PyWorker signed its dataclass fields only; if extra keys came along, also try "every key
    // but signature and __request_id", in case the autoscaler signs what it sends.
    const extra = Object.keys(raw).filter((k) => !UNSIGNED_KEYS.has(k) && !FIELD_KEYS.includes(k));
    if (kind === 'fields' && extra.length > 0) {
      const all = Object.fromEntries(Object.entries(raw).filter(([k]) => !UNSIGNED_KEYS.has(k)));
      out.push({ kind, message: dumps(all, { indent: 4, sortKeys: true }) });
    }
  }
  return out;
}

function pick(raw: Record<string, PyJson>, keys: string[]): Record<string, PyJson> {
  const out: Record<string, PyJson> = {};
  for (const key of keys) if (key in raw) out[key] = raw[key] as PyJson;
  return out;
}

/** Standard base64, decoded leniently (whitespace and line breaks tolerated). */
export function decodeSignature(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'base64');
}

export function parsePublicKey(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`expected an RSA public key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  return key;
}

export class SignatureVerifier {
  readonly scheme: SignatureScheme;
  private readonly logger: Logger;
  private key: KeyObject | undefined;
  private highestReqnum = -Infinity;
  /** The last REPLAY_WINDOW accepted field-signed messages (insertion order = age). */
  private readonly recent = new Set<string>();

  constructor(opts: { scheme: SignatureScheme; logger: Logger }) {
    this.scheme = opts.scheme;
    this.logger = opts.logger;
  }

  get hasKey(): boolean {
    return this.key !== undefined;
  }

  setKey(key: KeyObject): void {
    this.key = key;
  }

  check(envelope: Envelope): SignatureResult {
    if (this.scheme === 'off') return { ok: true, kind: 'off' };
    const { reqnum, request_idx } = envelope.auth;
    if (!this.key) {
      this.logger.warn({ reqnum, request_idx }, 'signature check failed: the autoscaler public key is not loaded');
      return { ok: false, reason: 'public key not loaded' };
    }
    const signature = decodeSignature(envelope.auth.signature);
    const tried = candidateMessages(this.scheme, envelope);
    const match = tried.find(
      (c) => signature.length > 0 && verify('sha256', Buffer.from(c.message, 'utf8'), this.key!, signature),
    );
    if (!match) {
      // The exact bytes tried and the signature as received, so a scheme mismatch can be diagnosed.
      this.logger.warn(
        { scheme: this.scheme, reqnum, request_idx, tried, signature_b64: envelope.auth.signature },
        'signature check failed: no message verified',
      );
      return { ok: false, reason: 'bad signature' };
    }
    if (match.kind !== 'url') {
      const replay = this.replayReason(reqnum, match.message);
      if (replay !== undefined) {
        this.logger.warn({ reqnum, request_idx, message: match.message }, `signature check failed: ${replay}`);
        return { ok: false, reason: replay };
      }
      this.remember(reqnum, match.message);
    }
    return { ok: true, kind: match.kind };
  }

  private replayReason(reqnum: number, message: string): string | undefined {
    if (reqnum < this.highestReqnum - REPLAY_WINDOW) {
      return `replay: reqnum ${reqnum} is more than ${REPLAY_WINDOW} below the highest seen (${this.highestReqnum})`;
    }
    if (this.recent.has(message)) return 'replay: this signed message was already used';
    return undefined;
  }

  private remember(reqnum: number, message: string): void {
    this.highestReqnum = Math.max(this.highestReqnum, reqnum);
    this.recent.add(message);
    if (this.recent.size > REPLAY_WINDOW) this.recent.delete(this.recent.values().next().value as string);
  }
}
