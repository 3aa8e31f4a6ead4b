/** Stored weight bytes as the u32 words a kernel binding takes (every stored layout is whole words). */
export function words(bytes: Uint8Array): Uint32Array {
  if (bytes.byteLength % 4 !== 0) throw new Error(`${bytes.byteLength} bytes are not whole words`);
  return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}
