// A minimal reader of zip archives (stored or deflated entries, no ZIP64): the photos of a file to
// classify, looked up by file name, decompressed by the browser's DecompressionStream.

const END_OF_DIRECTORY = 0x06054b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;

export class ZipError extends Error {}

function findEndOfDirectory(view) {
  // The record is 22 bytes plus a comment of at most 65,535 bytes, at the very end.
  for (let offset = view.byteLength - 22; offset >= Math.max(0, view.byteLength - 22 - 65535); offset -= 1) {
    if (view.getUint32(offset, true) === END_OF_DIRECTORY) return offset;
  }
  throw new ZipError("ce fichier n'est pas une archive zip");
}

/** {file name without folders: entry} of an archive's files. */
export async function readZipIndex(file) {
  const buffer = await file.arrayBuffer();
  const view = new DataView(buffer);
  const end = findEndOfDirectory(view);
  const count = view.getUint16(end + 10, true);
  let offset = view.getUint32(end + 16, true);
  if (offset === 0xffffffff) throw new ZipError("archive ZIP64 non prise en charge");
  const decoder = new TextDecoder();
  const entries = new Map();
  for (let i = 0; i < count; i += 1) {
    if (view.getUint32(offset, true) !== DIRECTORY_ENTRY) throw new ZipError("répertoire de l'archive illisible");
    const nameLength = view.getUint16(offset + 28, true);
    const entry = {
      method: view.getUint16(offset + 10, true),
      compressedSize: view.getUint32(offset + 20, true),
      localOffset: view.getUint32(offset + 42, true),
      buffer,
    };
    const name = decoder.decode(new Uint8Array(buffer, offset + 46, nameLength));
    if (!name.endsWith("/")) entries.set(name.split("/").pop(), entry);
    offset += 46 + nameLength + view.getUint16(offset + 30, true) + view.getUint16(offset + 32, true);
  }
  return entries;
}

/** The bytes of one entry, as a Blob of the given type. */
export async function readEntry(entry, type) {
  const view = new DataView(entry.buffer);
  const local = entry.localOffset;
  if (view.getUint32(local, true) !== LOCAL_HEADER) throw new ZipError("entrée de l'archive illisible");
  const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
  const data = new Blob([new Uint8Array(entry.buffer, start, entry.compressedSize)]);
  if (entry.method === STORED) return new Blob([data], {type});
  if (entry.method !== DEFLATED) throw new ZipError(`méthode de compression ${entry.method} non prise en charge`);
  const inflated = data.stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Blob([await new Response(inflated).arrayBuffer()], {type});
}
