// Media type of an output file by extension: ComfyUI puts videos and animations under `images`
// too, so the extension is what tells them apart.
import path from 'node:path';

const TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mov': 'video/quicktime',
  '.mkv': 'video/x-matroska',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.flac': 'audio/flac',
  '.ogg': 'audio/ogg',
  '.opus': 'audio/opus',
  '.m4a': 'audio/mp4',
  '.json': 'application/json',
  '.txt': 'text/plain',
  '.glb': 'model/gltf-binary',
  '.gltf': 'model/gltf+json',
  '.obj': 'model/obj',
  '.safetensors': 'application/octet-stream',
};

export function mimeTypeOf(filename: string, reported?: string): string {
  const byName = TYPES[path.extname(filename).toLowerCase()];
  if (byName) return byName;
  if (reported && reported !== 'application/octet-stream') return reported.split(';')[0]!.trim();
  return 'application/octet-stream';
}
