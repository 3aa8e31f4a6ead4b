/**
 * GGUF writing for tests: the writer core and the F32/F16/Q8_0/Q4_0 encoders live in
 * formats/gguf-write.ts (the bench writes llama.cpp's files with them too); this adds a Q4_K
 * encoder that builds super-blocks from chosen scales, mins and codes, so a test knows exactly
 * which values a reader must recover. Layouts as formats/gguf.ts describes them.
 */
export {
  GGML,
  GGUF_VALUE,
  encodeF16,
  encodeF32,
  encodeQ4_0,
  encodeQ8_0,
  f32,
  str,
  u32,
  writeGguf,
  type GgufKv,
  type GgufTensorToWrite,
} from '../../formats/gguf-write.ts';

export interface Q4KBlock {
  /** f16 bits of d and dmin. */
  d: number;
  dmin: number;
  /** 6-bit scale and min of each of the 8 sub-blocks. */
  sc: number[];
  m: number[];
  /** 256 codes in [0, 15]. */
  codes: number[];
}

/** Q4_K super-blocks, packing scales/mins and codes as the format describes. */
export function encodeQ4K(blocks: Q4KBlock[]): Uint8Array {
  const out = new Uint8Array(144 * blocks.length);
  const dv = new DataView(out.buffer);
  blocks.forEach((blk, b) => {
    const at = 144 * b;
    dv.setUint16(at, blk.d, true);
    dv.setUint16(at + 2, blk.dmin, true);
    const s = out.subarray(at + 4, at + 16);
    for (let j = 0; j < 4; j++) {
      s[j] = (blk.sc[j] & 63) | ((blk.sc[j + 4] >> 4) << 6);
      s[j + 4] = (blk.m[j] & 63) | ((blk.m[j + 4] >> 4) << 6);
      s[j + 8] = (blk.sc[j + 4] & 15) | ((blk.m[j + 4] & 15) << 4);
    }
    for (let j = 0; j < 8; j++) {
      const run = at + 16 + 32 * (j >> 1);
      for (let l = 0; l < 32; l++) out[run + l] |= blk.codes[32 * j + l] << (4 * (j & 1));
    }
  });
  return out;
}
