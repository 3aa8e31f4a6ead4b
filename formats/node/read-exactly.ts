/** Reading byte ranges of checkpoint files (safetensors, GGUF) through a file handle. */
import type { FileHandle } from 'node:fs/promises';

/** handle.read may return fewer bytes than asked; loop until the range is filled. */
export async function readExactly(
  handle: FileHandle,
  position: number,
  length: number,
  file: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) {
      throw new Error(`${file}: unexpected end of file at byte ${position + done} (truncated?)`);
    }
    done += bytesRead;
  }
  return out;
}
