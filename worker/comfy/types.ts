// Shapes of ComfyUI's API as the worker uses them (see ../shared/reference/comfyui-server-api.md).

/** An API-format graph: node id → node. Links are `[source node id, output index]`. */
export type Workflow = Record<string, WorkflowNode>;

export interface WorkflowNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string };
}

/** A websocket text frame: always `{type, data}`; unknown types and fields are ignored. */
export interface ComfyEvent {
  type: string;
  data: Record<string, unknown>;
}

/** One file ComfyUI reports in a history entry's outputs. */
export interface OutputFileRef {
  nodeId: string;
  /** The key under outputs[node] it was listed in: images, gifs, audio, animated files... */
  kind: string;
  filename: string;
  subfolder: string;
  /** ComfyUI's folder type: output, temp or input. */
  type: string;
}

/** A non-file output, e.g. PreviewAny's `text`. */
export interface OutputValue {
  nodeId: string;
  kind: string;
  value: unknown;
}

export interface HistoryEntry {
  prompt?: unknown[];
  outputs?: Record<string, Record<string, unknown>>;
  status?: {
    status_str?: string;
    completed?: boolean;
    messages?: Array<[string, Record<string, unknown>]>;
  } | null;
  meta?: Record<string, unknown>;
}

export interface QueueSnapshot {
  running: string[];
  pending: string[];
}

export interface UploadedFile {
  name: string;
  subfolder: string;
  type: string;
}
