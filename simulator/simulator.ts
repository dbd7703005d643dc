// The Simulator object: owns the HTTP server, the data folders, the faults and the logs that
// outlive a simulated process, and swaps processes on crash()/restart().

import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WebSocketServer } from 'ws';
import { DataDirs } from './files';
import { emptyImage, rgbBytes } from './imageops';
import { nodeClasses, type NodeClass, type NodeEnv } from './nodes';
import { encodePng } from './png';
import { ComfyProcess, type ProcessHooks } from './process';
import recordedFeatures from './recorded/features.json';
import recordedSystemStats from './recorded/system_stats.json';
import { createRequestHandler, createUpgradeHandler, systemStats, type ServerContext } from './server';
import { resolveTiming, type SimulatorTiming } from './timing';
import type { RecordedRequest, Simulator, SimulatorFaults, SimulatorOptions } from './types';

const DEFAULT_MODELS = ['v1-5-pruned-emaonly-fp16.safetensors'];

/** Fault arming for one prompt: counts its websocket messages. */
interface Armed {
  promptId: string;
  count: number;
  drop: number | null;
  die: number | null;
}

/** A fresh ComfyUI install has input/example.png (it is in LoadImage's recorded combo list). */
function seedExampleImage(inputDir: string): void {
  if (readdirSync(inputDir).length > 0) return;
  const img = emptyImage(64, 64, 1, 0x7f7f7f);
  writeFileSync(join(inputDir, 'example.png'), encodePng({ width: 64, height: 64, rgb: rgbBytes(img, 0), compressLevel: 6 }));
}

class SimulatorImpl implements Simulator {
  readonly faults: SimulatorFaults;
  readonly prompts: Array<{ prompt_id: string; body: unknown; at: number }> = [];
  readonly requests: RecordedRequest[] = [];
  readonly dataDir: string;
  private readonly host: string;
  private portNumber: number;
  private nodeDelaySetting: number | Record<string, number>;
  private readonly timing: SimulatorTiming;
  private readonly classes: ReadonlyMap<string, NodeClass>;
  private readonly env: NodeEnv;
  private readonly models: readonly string[];
  private readonly wss = new WebSocketServer({ noServer: true });
  private server: Server | null = null;
  private readonly connections = new Set<Socket>();
  private current: ComfyProcess;
  private armed: Armed | null = null;
  private closed = false;
  /** The folder was made by us (no dataDir option): close() removes it. */
  private readonly ownsDataDir: boolean;

  constructor(opts: SimulatorOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.portNumber = opts.port ?? 0;
    this.ownsDataDir = opts.dataDir === undefined;
    this.dataDir = resolve(opts.dataDir ?? mkdtempSync(join(tmpdir(), 'comfy-sim-')));
    this.nodeDelaySetting = opts.nodeDelayMs ?? 0;
    this.timing = resolveTiming(opts.timing);
    this.models = [...(opts.models ?? DEFAULT_MODELS)];
    this.faults = {
      viewDelayMs: 0,
      stallWebsocket: false,
      dropWebsocketAfterEvents: null,
      dieAfterEvents: null,
      rejectWebsocket: false,
      ...opts.faults,
    };
    this.classes = nodeClasses(opts.extraNodes);
    this.env = {
      dirs: new DataDirs(this.dataDir),
      models: this.models,
      outputPaddingBytes: opts.outputPaddingBytes ?? 0,
      stepDelayMs: opts.stepDelayMs ?? 0,
    };
    for (const d of ['input', 'output', 'temp']) mkdirSync(join(this.dataDir, d), { recursive: true });
    seedExampleImage(join(this.dataDir, 'input'));
    this.current = this.newProcess();
  }

  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.portNumber}`;
  }

  get port(): number {
    return this.portNumber;
  }

  setNodeDelay(ms: number | Record<string, number>): void {
    this.nodeDelaySetting = ms;
  }

  private nodeDelay(classType: string): number {
    const s = this.nodeDelaySetting;
    return typeof s === 'number' ? s : (s[classType] ?? s['*'] ?? 0);
  }

  private newProcess(): ComfyProcess {
    // ComfyUI empties temp/ when it starts.
    rmSync(join(this.dataDir, 'temp'), { recursive: true, force: true });
    mkdirSync(join(this.dataDir, 'temp'), { recursive: true });
    const hooks: ProcessHooks = {
      stalled: () => this.faults.stallWebsocket,
      sent: (id) => this.countMessage(id),
      promptStarting: (id) => this.arm(id),
      promptFinished: (id) => {
        if (this.armed?.promptId !== id) return;
        if (this.armed.drop !== null) this.faults.dropWebsocketAfterEvents = null;
        if (this.armed.die !== null) this.faults.dieAfterEvents = null;
        this.armed = null;
      },
      accepted: (id, body) => this.prompts.push({ prompt_id: id, body, at: Date.now() }),
      nodeDelay: (c) => this.nodeDelay(c),
      pickupMs: () => this.timing.pickupMs,
    };
    return new ComfyProcess(this.classes, this.env, hooks, recordedFeatures);
  }

  private arm(promptId: string): void {
    const { dropWebsocketAfterEvents: drop, dieAfterEvents: die } = this.faults;
    this.armed = drop !== null || die !== null ? { promptId, count: 0, drop, die } : null;
    this.checkArmed();
  }

  private countMessage(promptId: string): void {
    if (this.armed?.promptId !== promptId) return;
    this.armed.count++;
    this.checkArmed();
  }

  private checkArmed(): void {
    const a = this.armed;
    if (!a) return;
    if (a.drop !== null && a.count >= a.drop) {
      a.drop = null;
      this.faults.dropWebsocketAfterEvents = null;
      this.current.hub.terminateAll();
    }
    if (a.die !== null && a.count >= a.die) {
      a.die = null;
      this.faults.dieAfterEvents = null;
      this.armed = null;
      void this.crash();
    }
  }

  private context(): ServerContext {
    return {
      proc: () => this.current,
      classes: this.classes,
      env: this.env,
      faults: this.faults,
      models: this.models,
      features: recordedFeatures,
      systemStats: () => systemStats(recordedSystemStats, this.host, this.portNumber),
      record: (method, path) => {
        const entry: RecordedRequest = { method, path, at: Date.now() };
        this.requests.push(entry);
        return entry;
      },
      delay: (ms) => this.current.sleep(ms),
      timing: this.timing,
    };
  }

  async listen(): Promise<void> {
    const server = createServer(createRequestHandler(this.context()));
    server.on('upgrade', createUpgradeHandler(this.context(), this.wss));
    server.on('connection', (s: Socket) => {
      this.connections.add(s);
      s.on('close', () => this.connections.delete(s));
    });
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(this.portNumber, this.host, () => {
        server.off('error', rej);
        res();
      });
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.portNumber = addr.port;
    this.server = server;
  }

  /** Stops listening and drops every connection at once. */
  private stopServer(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.connections) s.destroy();
    this.connections.clear();
    if (!server) return Promise.resolve();
    return new Promise((res) => server.close(() => res()));
  }

  crash(): Promise<void> {
    this.current.kill();
    this.armed = null;
    return this.stopServer();
  }

  async restart(): Promise<void> {
    if (this.closed) throw new Error('simulator is closed');
    if (this.server) await this.crash();
    this.current = this.newProcess();
    await this.listen();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.current.hub.closeAll(200);
    this.current.kill();
    await this.stopServer();
    this.wss.close();
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const sim = new SimulatorImpl(opts);
  await sim.listen();
  return sim;
}
