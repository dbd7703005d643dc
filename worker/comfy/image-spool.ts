// Decoding an input image's text into a file as it arrives: the content of a JSON string
// (base64 or a base64 data URI) in, the decoded bytes written to a file, never more than a chunk
// of it in memory. What the text was (valid base64, a data URI not in base64) is kept on the
// result, so the admission check answers with the same 400s as for an image held as text.
import { once } from 'node:events';
import fs from 'node:fs';
import { finished } from 'node:stream/promises';
import { Base64Decoder } from '../util/base64';
import { JsonStringBytes, type StringSink } from '../util/json-divert';
import { SpooledImage, type SpoolProblem } from './inputs';

/** A data URI's head (`data:image/png;base64,`) longer than this is not one. */
const MAX_DATA_URI_HEAD = 1024;
const DATA = Buffer.from('data:');

/** Whether a long image text (its first bytes as in the JSON text) is to be decoded into a file: not a URL. */
export function isSpoolable(head: Buffer): boolean {
  let start: string;
  try {
    start = new JsonStringBytes().push(head.subarray(0, 64)).toString('latin1', 0, 8);
  } catch {
    return true; // broken JSON: the spool reports it
  }
  return !/^https?:\/\//i.test(start);
}

export class ImageSpool implements StringSink {
  private readonly text = new JsonStringBytes();
  private readonly decoder = new Base64Decoder();
  private readonly file: fs.WriteStream;
  /** A write error not yet reported (the disk is full, the folder is gone). */
  private failure: Error | undefined;
  /** The start of the text while it may still be a data URI's head. */
  private head: Buffer | undefined = Buffer.alloc(0);
  private problem: SpoolProblem | undefined;
  private size = 0;

  constructor(readonly path: string) {
    // 'wx': a spool file is always new; 0600: it is a client's data.
    this.file = fs.createWriteStream(path, { flags: 'wx', mode: 0o600 });
    this.file.on('error', (err) => (this.failure ??= err));
  }

  async write(raw: Buffer): Promise<void> {
    try {
      await this.take(raw);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** The body stopped coming (or was refused): close the file; the request's spool deletes it. */
  abort(): void {
    this.file.destroy();
  }

  async end(): Promise<SpooledImage> {
    try {
      return await this.finish();
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  private async take(raw: Buffer): Promise<void> {
    const bytes = this.text.push(raw);
    if (this.problem !== undefined) return;
    if (this.head === undefined) return this.decode(bytes);
    this.head = Buffer.concat([this.head, bytes]);
    const head = this.head;
    if (head.length < DATA.length && DATA.subarray(0, head.length).equals(head)) return; // may still be "data:"
    if (!head.subarray(0, DATA.length).equals(DATA)) {
      this.head = undefined;
      return this.decode(head);
    }
    const comma = head.indexOf(0x2c);
    if (comma < 0) {
      if (head.length > MAX_DATA_URI_HEAD) this.problem = 'data_uri';
      return;
    }
    // As the admission check has it: `data:<anything but a comma>;base64,`.
    if (!head.toString('latin1', 0, comma).endsWith(';base64')) {
      this.problem = 'data_uri';
      return;
    }
    this.head = undefined;
    return this.decode(head.subarray(comma + 1));
  }

  private async finish(): Promise<SpooledImage> {
    this.text.end();
    if (this.head !== undefined && this.problem === undefined) {
      // A short text: "data:" without a comma is a data URI without base64; anything else is base64.
      if (this.head.subarray(0, DATA.length).equals(DATA)) this.problem = 'data_uri';
      else await this.decode(this.head);
    }
    if (this.problem === undefined) {
      await this.put(this.decoder.end());
      if (!this.decoder.valid) this.problem = 'base64';
    }
    this.file.end();
    await finished(this.file);
    return new SpooledImage(this.path, this.size, this.problem);
  }

  private async decode(bytes: Buffer): Promise<void> {
    await this.put(this.decoder.push(bytes));
  }

  private async put(bytes: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (bytes.length === 0) return;
    this.size += bytes.length;
    // Written as it comes, waiting for the disk when it is behind (the body waits with it).
    if (!this.file.write(bytes)) await once(this.file, 'drain');
  }
}
