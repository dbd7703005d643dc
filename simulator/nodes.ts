// What each simulated node class does when it runs: the recorded image nodes for real (pixels,
// files, the recorded exceptions), the diffusion nodes as pass-through of opaque values with the
// sizes that matter downstream, plus test-defined classes (SimNodeDef).

import { createHash, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DataDirs } from './files';
import { DISPLAY_ROOT, annotatedFilepath, getSaveImagePath, listInputImages, pyJoin, tracebackFrame } from './files';
import { blend, emptyImage, fromDecoded, invert, rgbBytes, scale, seedColor } from './imageops';
import { decodePng, encodePng, sniffImageSize } from './png';
import { PyFloat, dumps } from '../worker/util/pyjson';
import { PyException, isPyDict, pyNumber, pyRepr, pyStr, pyTypeName, toPlain } from './pyvalues';
import {
  BUILTIN_ORDER,
  builtinSchemas,
  cloneEntry,
  completeEntry,
  parseObjectInfoEntry,
  type BuiltinName,
  type ObjectInfoEntry,
} from './schemas';
import { SimImage, SimLatent, SimMask, SimOpaque } from './tensor';
import type { SimNodeDef } from './types';

export interface NodeEnv {
  dirs: DataDirs;
  models: readonly string[];
  outputPaddingBytes: number;
  stepDelayMs: number;
}

export interface RunContext {
  nodeId: string;
  promptId: string;
  /** This call's value of every input (one element of each input list), prompt order. */
  inputs: Map<string, unknown>;
  /** Hidden inputs (PROMPT, EXTRA_PNGINFO, UNIQUE_ID) by input name. */
  hidden: Map<string, unknown>;
  env: NodeEnv;
  /** A sampler step finished: checks for an interrupt, then reports progress. */
  progress(value: number, max: number): Promise<void>;
  sleep(ms: number): Promise<void>;
}

export interface NodeOutput {
  result?: unknown[];
  ui?: Record<string, unknown[]>;
}

export interface NodeClass {
  readonly name: string;
  /** The schema as /object_info shows it right now (combo lists can change). */
  schema(env: NodeEnv): ObjectInfoEntry;
  /** A comfy_api v3 node: other traceback frames, hidden inputs not passed as inputs. */
  readonly v3: boolean;
  /** VALIDATE_INPUTS: argument names, and the check (true, false or a message). */
  readonly validateInputs?: { args: string[]; check(values: Map<string, unknown>, env: NodeEnv): true | false | string };
  /** IS_CHANGED; a throw means NaN (never equal, so never cached). */
  readonly isChanged?: (inputs: Map<string, unknown>, env: NodeEnv) => unknown;
  run(ctx: RunContext): Promise<NodeOutput>;
}

const V3_FRAMES = [
  tracebackFrame('comfy_api/internal/__init__.py', 149, 'wrapped_func'),
  tracebackFrame('comfy_api/latest/_io.py', 1270, 'EXECUTE_NORMALIZED'),
];

function num(v: unknown): number {
  return pyNumber(v) ?? 0;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : pyStr(v);
}

/** The IMAGE an input must hold; anything else fails the way torch code does on it. */
function image(v: unknown): SimImage {
  if (v instanceof SimImage) return v;
  throw new PyException('AttributeError', `'${pyTypeName(v)}' object has no attribute 'shape'`);
}

/** Resolves a display path (under /opt/ComfyUI) or an absolute path to the real file. */
function realPath(dirs: DataDirs, displayPath: string): string {
  return displayPath.startsWith(DISPLAY_ROOT + '/') ? dirs.real(displayPath) : displayPath;
}

/** folder_paths.get_annotated_filepath for LoadImage: "name", "sub/name", "name [output]". */
function annotatedDisplayPath(dirs: DataDirs, name: string): string {
  const a = annotatedFilepath(name);
  return pyJoin(dirs.display(a.folder ?? 'input'), a.name);
}

function objectAt(type: string): string {
  return `<${type} object at 0x7f${randomInt(0x10000000, 0xffffffff).toString(16)}>`;
}

/** SaveImage/PreviewImage: one PNG per batch item, named as ComfyUI names them. */
function saveImages(ctx: RunContext, kind: 'output' | 'temp', prefixAppend: string, compressLevel: number): NodeOutput {
  const images = image(ctx.inputs.get('images'));
  const prefix = str(ctx.inputs.get('filename_prefix') ?? 'ComfyUI') + prefixAppend;
  let sp;
  try {
    sp = getSaveImagePath(ctx.env.dirs, kind, prefix, images.width, images.height);
  } catch (e) {
    if (e instanceof PyException)
      throw new PyException(e.excType, e.pyMessage, [tracebackFrame('nodes.py', 1590, 'save_images'), ...e.frames]);
    throw e;
  }
  mkdirSync(sp.folder, { recursive: true });
  const text: Array<[string, string]> = [];
  const prompt = ctx.hidden.get('prompt');
  const extra = ctx.hidden.get('extra_pnginfo');
  if (prompt !== null && prompt !== undefined) text.push(['prompt', dumps(prompt)]);
  if (isPyDict(extra)) for (const [k, v] of extra) text.push([k, dumps(v)]);
  const results: unknown[] = [];
  let counter = sp.counter;
  for (let b = 0; b < images.batch; b++) {
    const file = `${sp.filename.replaceAll('%batch_num%', String(b))}_${String(counter).padStart(5, '0')}_.png`;
    const bytes = encodePng({
      width: images.width,
      height: images.height,
      rgb: rgbBytes(images, b),
      text,
      compressLevel,
      paddingBytes: ctx.env.outputPaddingBytes,
    });
    writeFileSync(join(sp.folder, file), bytes);
    results.push(
      new Map<string, unknown>([
        ['filename', file],
        ['subfolder', sp.subfolder],
        ['type', kind],
      ]),
    );
    counter++;
  }
  return { ui: { images: results } };
}

/** PreviewImage's random name part; ComfyUI's alphabet really has "stupvxyz" (no "w"). */
function tempSuffix(): string {
  const letters = 'abcdefghijklmnopqrstupvxyz';
  let s = '';
  for (let k = 0; k < 5; k++) s += letters[randomInt(letters.length)];
  return '_temp_' + s;
}

function loadImageFile(ctx: RunContext): NodeOutput {
  const name = str(ctx.inputs.get('image'));
  const display = annotatedDisplayPath(ctx.env.dirs, name);
  const real = realPath(ctx.env.dirs, display);
  const frames = [tracebackFrame('nodes.py', 1663, 'load_image'), tracebackFrame('node_helpers.py', 21, 'pillow')];
  let bytes: Buffer;
  try {
    bytes = readFileSync(real);
  } catch {
    throw new PyException('FileNotFoundError', `[Errno 2] No such file or directory: '${display}'`, [
      ...frames,
      `  File "/usr/lib/python3/dist-packages/PIL/Image.py", line 3236, in open\n    <source line omitted from recording>\n`,
    ]);
  }
  const decoded = decodePng(bytes);
  if (decoded) {
    const { image: img, mask } = fromDecoded(decoded);
    return { result: [img, mask] };
  }
  const size = sniffImageSize(bytes);
  if (!size) {
    throw new PyException('PIL.UnidentifiedImageError', `cannot identify image file '${display}'`, [
      ...frames,
      `  File "/usr/lib/python3/dist-packages/PIL/Image.py", line 3283, in open\n    <source line omitted from recording>\n`,
    ]);
  }
  // Formats the simulator does not decode load as black pixels of the right size.
  return { result: [SimImage.filled(1, size.height, size.width, [0, 0, 0]), new SimMask(1, 64, 64, () => 0)] };
}

function fnv(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const c of Buffer.from(s)) h = BigInt.asUintN(64, (h ^ BigInt(c)) * 0x100000001b3n);
  return h;
}

function previewText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean' || v instanceof PyFloat) return pyStr(v);
  if (Array.isArray(v) || isPyDict(v)) {
    try {
      return dumps(v);
    } catch {
      return pyRepr(v);
    }
  }
  return pyRepr(v); // tensors and models are not JSON serialisable: str() it is
}

/** A minimal RIFF/WEBP header (VP8X with the canvas size); SaveAnimatedWEBP output stand-in. */
function webpPlaceholder(width: number, height: number, animated: boolean): Buffer {
  const chunk = Buffer.alloc(18);
  chunk.write('VP8X', 0, 'latin1');
  chunk.writeUInt32LE(10, 4);
  chunk[8] = animated ? 0x02 : 0;
  chunk.writeUIntLE(width - 1, 12, 3);
  chunk.writeUIntLE(height - 1, 15, 3);
  const head = Buffer.alloc(12);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(4 + chunk.length, 4);
  head.write('WEBP', 8, 'latin1');
  return Buffer.concat([head, chunk]);
}

/** Stand-in bytes of a video or animation file: the container's magic, not playable media. */
function mediaPlaceholder(ext: string, width: number, height: number): Buffer {
  if (ext === 'webp') return webpPlaceholder(width, height, true);
  if (ext === 'gif') {
    const head = Buffer.alloc(13);
    head.write('GIF89a', 0, 'latin1');
    head.writeUInt16LE(width, 6);
    head.writeUInt16LE(height, 8);
    return Buffer.concat([head, Buffer.from([0x3b])]); // trailer
  }
  if (ext === 'webm' || ext === 'mkv') return Buffer.from([0x1a, 0x45, 0xdf, 0xa3, 0x80]); // EBML header
  // ISO base media (mp4, mov): an ftyp box and an empty mdat.
  const ftyp = Buffer.alloc(28);
  ftyp.writeUInt32BE(28, 0);
  ftyp.write('ftypisom', 4, 'latin1');
  ftyp.writeUInt32BE(0x200, 12);
  ftyp.write('isomiso2mp41', 16, 'latin1');
  const mdat = Buffer.alloc(8);
  mdat.writeUInt32BE(8, 0);
  mdat.write('mdat', 4, 'latin1');
  return Buffer.concat([ftyp, mdat]);
}

/** VideoHelperSuite's counter: one more than the highest `<filename>_<digits>...` in the folder. */
function vhsCounter(folder: string, filename: string): number {
  const escaped = filename.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const matcher = new RegExp(`^${escaped}_(\\d+)\\D*\\..+$`, 'i');
  let max = 0;
  try {
    for (const f of readdirSync(folder)) {
      const m = matcher.exec(f);
      if (m) max = Math.max(max, Number(m[1]));
    }
  } catch {
    // no folder yet: the first file
  }
  return max + 1;
}

type Impl = Omit<NodeClass, 'name' | 'schema'> & { dynamic?: (e: ObjectInfoEntry, env: NodeEnv) => void };

const IMPLS: Record<BuiltinName, Impl> = {
  EmptyImage: {
    v3: false,
    async run(ctx) {
      const i = ctx.inputs;
      return {
        result: [emptyImage(num(i.get('width')), num(i.get('height')), num(i.get('batch_size') ?? 1), num(i.get('color') ?? 0))],
      };
    },
  },
  ImageInvert: {
    v3: false,
    async run(ctx) {
      return { result: [invert(image(ctx.inputs.get('image')))] };
    },
  },
  ImageScale: {
    v3: false,
    async run(ctx) {
      const i = ctx.inputs;
      return {
        result: [
          scale(
            image(i.get('image')),
            str(i.get('upscale_method')),
            num(i.get('width')),
            num(i.get('height')),
            str(i.get('crop')),
          ),
        ],
      };
    },
  },
  ImageBlend: {
    v3: true,
    async run(ctx) {
      const i = ctx.inputs;
      const frames = [...V3_FRAMES, tracebackFrame('comfy_extras/nodes_post_processing.py', 40, 'execute')];
      return {
        result: [
          blend(image(i.get('image1')), image(i.get('image2')), num(i.get('blend_factor')), str(i.get('blend_mode')), frames),
        ],
      };
    },
  },
  SaveImage: {
    v3: false,
    async run(ctx) {
      return saveImages(ctx, 'output', '', 4);
    },
  },
  PreviewImage: {
    v3: false,
    async run(ctx) {
      return saveImages(ctx, 'temp', tempSuffix(), 1);
    },
  },
  LoadImage: {
    v3: false,
    validateInputs: {
      args: ['s', 'image'],
      check(values, env) {
        const name = str(values.get('image'));
        const real = realPath(env.dirs, annotatedDisplayPath(env.dirs, name));
        return existsSync(real) ? true : `Invalid image file: ${name}`;
      },
    },
    isChanged(inputs, env) {
      const real = realPath(env.dirs, annotatedDisplayPath(env.dirs, str(inputs.get('image'))));
      return createHash('sha256').update(readFileSync(real)).digest('hex');
    },
    dynamic(e, env) {
      const spec = e.input.required?.['image'];
      if (spec) spec[0] = listInputImages(join(env.dirs.dataDir, 'input'));
    },
    async run(ctx) {
      return loadImageFile(ctx);
    },
  },
  CheckpointLoaderSimple: {
    v3: false,
    dynamic(e, env) {
      const spec = e.input.required?.['ckpt_name'];
      if (spec) spec[0] = [...env.models];
    },
    async run(ctx) {
      const ckpt = str(ctx.inputs.get('ckpt_name'));
      return {
        result: [
          new SimOpaque('MODEL', objectAt('comfy.model_patcher.ModelPatcher'), { ckpt }),
          new SimOpaque('CLIP', objectAt('comfy.sd.CLIP'), { ckpt }),
          new SimOpaque('VAE', objectAt('comfy.sd.VAE'), { ckpt }),
        ],
      };
    },
  },
  CLIPTextEncode: {
    v3: false,
    async run(ctx) {
      const text = str(ctx.inputs.get('text'));
      return {
        result: [
          new SimOpaque(
            'CONDITIONING',
            `[[tensor([[[0., 0., 0.,  ..., 0., 0., 0.]]]), {'pooled_output': tensor([[0., 0., 0.,  ..., 0., 0., 0.]])}]]`,
            { text },
          ),
        ],
      };
    },
  },
  EmptyLatentImage: {
    v3: false,
    async run(ctx) {
      const i = ctx.inputs;
      return {
        result: [
          new SimLatent(
            num(i.get('batch_size') ?? 1),
            Math.floor(num(i.get('height')) / 8),
            Math.floor(num(i.get('width')) / 8),
            null,
          ),
        ],
      };
    },
  },
  KSampler: {
    v3: false,
    async run(ctx) {
      const i = ctx.inputs;
      const steps = num(i.get('steps'));
      for (let s = 1; s <= steps; s++) {
        await ctx.sleep(ctx.env.stepDelayMs);
        await ctx.progress(s, steps);
      }
      const latent = i.get('latent_image');
      const pos = i.get('positive');
      const text = pos instanceof SimOpaque ? String(pos.info['text'] ?? '') : '';
      const seed = BigInt.asUintN(64, BigInt(Math.trunc(num(i.get('seed')))) ^ fnv(text));
      const l = latent instanceof SimLatent ? latent : new SimLatent(1, 64, 64, null);
      return { result: [new SimLatent(l.batch, l.height8, l.width8, seed)] };
    },
  },
  VAEDecode: {
    v3: false,
    async run(ctx) {
      const s = ctx.inputs.get('samples');
      const l = s instanceof SimLatent ? s : new SimLatent(1, 64, 64, null);
      return { result: [SimImage.filled(l.batch, l.height8 * 8, l.width8 * 8, seedColor(l.seed))] };
    },
  },
  VAEEncode: {
    v3: false,
    async run(ctx) {
      const px = image(ctx.inputs.get('pixels'));
      return { result: [new SimLatent(px.batch, Math.floor(px.height / 8), Math.floor(px.width / 8), null)] };
    },
  },
  PreviewAny: {
    v3: false,
    async run(ctx) {
      return { ui: { text: [previewText(ctx.inputs.get('source'))] } };
    },
  },
  SaveAnimatedWEBP: {
    v3: true,
    async run(ctx) {
      const images = image(ctx.inputs.get('images'));
      let sp;
      try {
        sp = getSaveImagePath(
          ctx.env.dirs,
          'output',
          str(ctx.inputs.get('filename_prefix') ?? 'ComfyUI'),
          images.width,
          images.height,
        );
      } catch (e) {
        if (e instanceof PyException)
          throw new PyException(e.excType, e.pyMessage, [
            ...V3_FRAMES,
            tracebackFrame('comfy_extras/nodes_images.py', 219, 'execute'),
            tracebackFrame('comfy_api/latest/_ui.py', 218, 'get_save_animated_webp_ui'),
            ...e.frames,
          ]);
        throw e;
      }
      mkdirSync(sp.folder, { recursive: true });
      const file = `${sp.filename}_${String(sp.counter).padStart(5, '0')}_.webp`;
      const animated = images.batch > 1;
      writeFileSync(join(sp.folder, file), webpPlaceholder(images.width, images.height, animated));
      return {
        ui: {
          images: [
            new Map<string, unknown>([
              ['filename', file],
              ['subfolder', sp.subfolder],
              ['type', 'output'],
            ]),
          ],
          animated: [animated],
        },
      };
    },
  },
  VHS_VideoCombine: {
    v3: false,
    // Writes the first frame as a PNG (VideoHelperSuite keeps the workflow in it) and the video;
    // lists the video under `gifs` with its format, like combine_video's ui output.
    async run(ctx) {
      const images = image(ctx.inputs.get('images'));
      const format = str(ctx.inputs.get('format') ?? 'image/gif');
      const save = ctx.inputs.get('save_output');
      const kind = save === false || save === 0 ? 'temp' : 'output';
      let sp;
      try {
        sp = getSaveImagePath(
          ctx.env.dirs,
          kind,
          str(ctx.inputs.get('filename_prefix') ?? 'AnimateDiff'),
          images.width,
          images.height,
        );
      } catch (e) {
        if (e instanceof PyException)
          throw new PyException(e.excType, e.pyMessage, [
            `  File "${DISPLAY_ROOT}/custom_nodes/ComfyUI-VideoHelperSuite/videohelpersuite/nodes.py", line 506, in combine_video\n    <source line omitted from recording>\n`,
            ...e.frames,
          ]);
        throw e;
      }
      mkdirSync(sp.folder, { recursive: true });
      const counter = String(vhsCounter(sp.folder, sp.filename)).padStart(5, '0');
      const ext = (format.split('/')[1] ?? 'gif').split('-').pop() ?? 'gif';
      const frame = `${sp.filename}_${counter}.png`;
      const file = `${sp.filename}_${counter}.${ext}`;
      writeFileSync(
        join(sp.folder, frame),
        encodePng({
          width: images.width,
          height: images.height,
          rgb: rgbBytes(images, 0),
          text: [],
          compressLevel: 4,
          paddingBytes: 0,
        }),
      );
      writeFileSync(join(sp.folder, file), mediaPlaceholder(ext, images.width, images.height));
      return {
        ui: {
          gifs: [
            new Map<string, unknown>([
              ['filename', file],
              ['subfolder', sp.subfolder],
              ['type', kind],
              ['format', format],
              ['frame_rate', new PyFloat(num(ctx.inputs.get('frame_rate') ?? 8))],
              ['workflow', frame],
              ['fullpath', pyJoin(ctx.env.dirs.display(kind), sp.subfolder, file)],
            ]),
          ],
        },
      };
    },
  },
};

/** A value of the given type for outputs of test-defined nodes (they only return UI). */
function placeholderOutput(type: string, cls: string): unknown {
  if (type === 'IMAGE') return SimImage.filled(1, 64, 64, [0, 0, 0]);
  if (type === 'MASK') return new SimMask(1, 64, 64, () => 0);
  if (type === 'LATENT') return new SimLatent(1, 8, 8, null);
  return new SimOpaque(type, `<${type} from ${cls}>`);
}

function customClass(name: string, def: SimNodeDef): NodeClass {
  const schema = completeEntry(name, parseObjectInfoEntry(def.schema));
  return {
    name,
    v3: false,
    schema: () => cloneEntry(schema),
    async run(ctx) {
      const inputs: Record<string, unknown> = {};
      for (const [k, v] of ctx.inputs)
        inputs[k] =
          v instanceof SimImage || v instanceof SimLatent || v instanceof SimMask || v instanceof SimOpaque ? v : toPlain(v);
      let ui: Record<string, unknown> | undefined;
      try {
        const out = await def.run?.({
          inputs,
          nodeId: ctx.nodeId,
          promptId: ctx.promptId,
          writeFile(kind, subfolder, filename, bytes) {
            const dir = join(ctx.env.dirs.dataDir, kind, subfolder);
            mkdirSync(dir, { recursive: true });
            writeFileSync(join(dir, filename), bytes);
          },
        });
        ui = out?.ui;
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        throw new PyException(err.name === 'Error' ? 'Exception' : err.name, err.message, [
          `  File "${DISPLAY_ROOT}/custom_nodes/${name}/__init__.py", line 1, in run\n    <source line omitted from recording>\n`,
        ]);
      }
      // ComfyUI concatenates UI lists across calls; a non-list value is taken as one item.
      const uiLists = ui
        ? Object.fromEntries(Object.entries(ui).map(([k, v]) => [k, Array.isArray(v) ? (v as unknown[]) : [v]]))
        : undefined;
      return { result: schema.output.map((t) => placeholderOutput(t, name)), ...(uiLists ? { ui: uiLists } : {}) };
    },
  };
}

/** All node classes of one simulator, in /object_info order. */
export function nodeClasses(extra: Record<string, SimNodeDef> = {}): Map<string, NodeClass> {
  const schemas = builtinSchemas();
  const out = new Map<string, NodeClass>();
  for (const name of BUILTIN_ORDER) {
    const base = schemas.get(name) as ObjectInfoEntry;
    const impl = IMPLS[name];
    out.set(name, {
      name,
      v3: impl.v3,
      ...(impl.validateInputs ? { validateInputs: impl.validateInputs } : {}),
      ...(impl.isChanged ? { isChanged: impl.isChanged } : {}),
      run: impl.run,
      schema(env) {
        const e = cloneEntry(base);
        impl.dynamic?.(e, env);
        return e;
      },
    });
  }
  for (const [name, def] of Object.entries(extra)) out.set(name, customClass(name, def));
  return out;
}
