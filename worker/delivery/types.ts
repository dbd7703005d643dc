// What delivery produces and needs, shared with jobs/ (which stores it) and contracts/ (which
// show it): one delivered output, a request's S3 settings and credentials.

/** One delivered output: a file (inline and/or uploaded) or a value such as text. */
export interface JobOutput {
  node_id: string;
  /** The key ComfyUI listed it under: images, gifs, audio, text, ... */
  output_type: string;
  filename?: string;
  subfolder?: string;
  /** ComfyUI's folder type: output or temp. */
  type?: string;
  mimetype?: string;
  size?: number;
  /** Index into the job's kept files when the bytes are kept for inline delivery. */
  blob?: number;
  url?: string;
  upload_error?: string;
  error?: string;
  value?: unknown;
}

/** Per-request S3 settings, without the credentials (those are sealed with the job's secrets). */
export interface S3Target {
  endpointUrl?: string;
  bucketName?: string;
  region?: string;
  prefix?: string;
  /** The request's connect_timeout (s) and connect_attempts, over S3_CONNECT_TIMEOUT / _ATTEMPTS. */
  connectTimeoutS?: number;
  attempts?: number;
}

/** A request's own S3 credentials. */
export interface S3Credentials {
  s3AccessKeyId?: string;
  s3SecretAccessKey?: string;
}

/** Where outputs kept for inline answers are written: a job's folder on the data volume. */
export interface OutputSink {
  /** The file for the output kept `index`-th (absolute path; its folder exists). */
  file(index: number): string;
}

/** An output's bytes kept for inline answers. */
export interface KeptFile {
  path: string;
  size: number;
  /**
   * The bytes as written, for a small output (see KEEP_IN_MEMORY_BYTES in inline.ts): the caller
   * waiting for the job is answered from them instead of reading the file back. The file is the
   * record (restarts, /status, /result); these live only as long as the job's final record.
   */
  bytes?: Buffer;
}
