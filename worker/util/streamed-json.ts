// A JSON answer whose large base64 values are streamed from files instead of being built in
// memory: the value is serialized with a placeholder string where each base64 goes, and the
// answer is written as the text around the placeholders with each file's bytes base64-encoded
// into its place as they are read. The length is known in advance (base64 of n bytes is
// 4⌈n/3⌉ characters), so the answer has a Content-Length like any other.
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Base64Encoder, base64Length } from './base64';

/** Bytes to send as base64: their size, and their pieces in order. */
export interface Base64Source {
  size: number;
  /** Each piece may be overwritten once the next is asked for (a reader may reuse one buffer). */
  open(): AsyncIterable<Buffer>;
  /** The bytes at once (small answers are written in one piece, see SMALL_ANSWER_BYTES). */
  read?(): Buffer;
}

/**
 * Answers whose files add up to at most this are read whole and written with one write: for the
 * usual small output a stream's open/read/close turns and several socket writes cost more than
 * the bytes (a fraction of a millisecond on the caller's wait). Larger ones stream.
 */
const SMALL_ANSWER_BYTES = 1024 * 1024;

export class StreamedJson {
  /** Random per answer, so no text a client gave can pass for a placeholder. */
  private nonce: string | undefined;
  private readonly sources: Base64Source[] = [];

  /** The string to put in the value where the base64 of `source` goes. */
  base64(source: Base64Source): string {
    this.nonce ??= randomBytes(8).toString('hex');
    this.sources.push(source);
    return `\u0000${this.nonce}:${this.sources.length - 1}`;
  }

  /** The JSON text around the placeholders, and the source that goes between each two. */
  private split(value: unknown): { texts: string[]; files: Base64Source[] } {
    const text = JSON.stringify(value);
    // JSON.stringify writes U+0000 as \u0000: split there; odd parts are source indexes.
    const parts = this.nonce === undefined ? [text] : text.split(new RegExp(`\\\\u0000${this.nonce}:(\\d+)`));
    const texts = parts.filter((_, i) => i % 2 === 0);
    const files = parts.filter((_, i) => i % 2 === 1).map((i) => this.sources[Number(i)]!);
    return { texts, files };
  }

  /**
   * Writes `value` into an answer already under way (an event stream), between `before` and
   * `after`, without ending it; false once the client has gone.
   */
  async writeTo(res: ServerResponse, value: unknown, before = '', after = ''): Promise<boolean> {
    const { texts, files } = this.split(value);
    texts[0] = before + texts[0]!;
    texts[texts.length - 1] += after;
    for (let i = 0; i < files.length; i++) {
      if (!(await write(res, texts[i]!)) || !(await sendBase64(res, files[i]!))) return false;
    }
    return write(res, texts[texts.length - 1]!);
  }

  /** Sends `value` as the answer, with the status and Express's JSON content type. */
  async send(res: ServerResponse, status: number, value: unknown): Promise<void> {
    const { texts, files } = this.split(value);
    const length =
      texts.reduce((sum, t) => sum + Buffer.byteLength(t), 0) + files.reduce((sum, f) => sum + base64Length(f.size), 0);
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', length);
    if (res.req?.method === 'HEAD') {
      res.end();
      return;
    }
    const small = files.reduce((sum, f) => sum + f.size, 0) <= SMALL_ANSWER_BYTES && files.every((f) => f.read);
    if (small) {
      res.end(
        Buffer.concat([...files.flatMap((f, i) => [Buffer.from(texts[i]!), base64Of(f)]), Buffer.from(texts[texts.length - 1]!)]),
      );
      return;
    }
    // A client that goes away ends the answer quietly: there is nobody to tell.
    for (let i = 0; i < files.length; i++) {
      if (!(await write(res, texts[i]!)) || !(await sendBase64(res, files[i]!))) return;
    }
    res.end(texts[texts.length - 1]);
  }
}

/** A small source's base64, checked against the size the Content-Length promised. */
function base64Of(source: Base64Source): Buffer {
  const bytes = source.read!();
  if (bytes.length !== source.size)
    throw new Error(`a file changed size while it was being sent (${bytes.length} of ${source.size} bytes)`);
  return Buffer.from(bytes.toString('base64'));
}

/** Writes, waiting for the client when it is behind; false once it has gone. */
async function write(res: ServerResponse, chunk: string | Buffer): Promise<boolean> {
  if (res.destroyed) return false;
  if (!res.write(chunk)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }
  return !res.destroyed;
}

/** Streams one source as base64; false once the client has gone. A file that changed size throws. */
async function sendBase64(res: ServerResponse, source: Base64Source): Promise<boolean> {
  const encoder = new Base64Encoder();
  let sent = 0;
  // Leaving the loop early (the client gone, an error) closes the source.
  for await (const chunk of source.open()) {
    sent += chunk.length;
    // The length was promised: a file that grew cannot be sent whole.
    if (sent > source.size) throw new Error(`a file grew while it was being sent (${source.size} bytes expected)`);
    if (!(await write(res, encoder.push(chunk)))) return false;
  }
  if (sent !== source.size) throw new Error(`a file shrank while it was being sent (${sent} of ${source.size} bytes)`);
  return write(res, encoder.end());
}
