/**
 * Quantised HF checkpoints strata reads by dequantising them itself, to f32, as their tensors are
 * read: gpt-oss's MXFP4 experts and DeepSeek-V3's block-scaled FP8 weights. Every other
 * quantization_config is refused by name. Browser-safe apart from the type of the file source.
 *
 * MXFP4 (OCP Microscaling spec v1.0; transformers' integrations/mxfp4.py): a tensor X is stored
 * as X_blocks (U8 [E, R, G, 16]) and X_scales (U8 [E, R, G]). Each row r of expert e holds G
 * blocks of 32 e2m1 values, two per byte, the low nibble first (element 2j) and the high nibble
 * second (2j + 1); block g's scale byte s is the e8m0 power 2^(s − 127). The rows R are the
 * output features and the 32-value blocks run along the input features (K = 32·G), so the block
 * axis is the matmul's reduction axis. The dense tensor is the [E, R, 32·G] values transposed to
 * [E, 32·G, R], the input-major layout of the unquantised gpt-oss checkpoint (gate_up_proj
 * [E, dim, 2·hidden] with gate and up interleaved on the last axis, down_proj [E, hidden, dim]),
 * which hf-gpt-oss.ts's slices then de-interleave and transpose as they do for a dense one.
 *
 * Block FP8 (DeepSeek-V3's inference/kernel.py weight_dequant and fp8_cast_bf16.py; transformers'
 * integrations/finegrained_fp8.py): a 2-D weight W [rows, cols] is stored as F8_E4M3 with a
 * companion W_scale_inv (F32 [⌈rows/128⌉, ⌈cols/128⌉]); W[r][c] = fp8(W)[r][c] ·
 * scale_inv[⌊r/128⌋][⌊c/128⌋], the last block row and column partial where 128 does not divide.
 * Which weights are FP8 is read from the dtypes (the release keeps embeddings, norms, routers and
 * the head in BF16), so any F8_E4M3 tensor without its scale is an error naming it.
 *
 * DeepSeek's reference and transformers can also run FP8 matmuls with activations quantised per
 * 128 on the fly (activation_scheme 'dynamic'); strata computes with the dequantised weights in
 * f32, which is the reference's bf16 path without the bf16 rounding of the weights.
 */
import { f8e4m3BitsToNumber } from '../../formats/safetensors.ts';
import { gatherSlice, sliceSpan, type TensorSlice } from '../../formats/tensor-slice.ts';
import type { SafetensorsSource } from '../../formats/node/safetensors-file.ts';
import type { AvailableTensor } from './check.ts';
import { isConfigObject, show } from './config-reader.ts';

export type CheckpointQuant =
  { method: 'mxfp4' } | { method: 'fp8'; block: readonly [number, number] };

/** What every refusal says strata does read. */
export const QUANT_SUPPORTED =
  'strata reads unquantised f32/f16/bf16 checkpoints, gpt-oss MXFP4 and DeepSeek-V3 block FP8';

/** The one block size of the FP8 checkpoints strata has checked against (DeepSeek-V3's). */
const FP8_BLOCK = [128, 128] as const;

/** The dtype label checkTensors sees for a tensor read through dequantisation. */
export const MXFP4_LABEL = 'MXFP4';
export const FP8_LABEL = 'F8_E4M3 × scale_inv';

/** The keys each method's config may carry that do not change the stored numbers. */
const MXFP4_KEYS = new Set(['quant_method', 'modules_to_not_convert', 'dequantize']);
const FP8_KEYS = new Set([
  'quant_method',
  'fmt',
  'weight_block_size',
  'activation_scheme',
  'modules_to_not_convert',
  'dequantize',
]);

/**
 * The checkpoint's quantisation from config.json's quantization_config (null where it has none).
 * Throws an Error whose message, "(what): why", says what is refused and what strata reads.
 */
export function readQuantization(quant: unknown, modelType: string): CheckpointQuant | null {
  if (quant === undefined || quant === null) return null;
  const refuse = (what: string, why = QUANT_SUPPORTED): never => {
    throw new Error(`(${what}): ${why}`);
  };
  if (!isConfigObject(quant)) return refuse(`is ${show(quant)}, not an object`);
  const method = quant.quant_method;
  const named = `quant_method ${typeof method === 'string' ? `'${method}'` : show(method)}`;
  const unknownKey = (known: Set<string>) => Object.keys(quant).find((k) => !known.has(k));
  if (method === 'mxfp4') {
    if (modelType !== 'gpt_oss')
      refuse(
        named,
        `strata reads MXFP4 only as gpt-oss's experts, not on model_type '${modelType}' (${QUANT_SUPPORTED})`,
      );
    const extra = unknownKey(MXFP4_KEYS);
    if (extra !== undefined)
      refuse(`${named} key '${extra}'`, `is not understood (${QUANT_SUPPORTED})`);
    return { method: 'mxfp4' };
  }
  if (method === 'fp8') {
    if (modelType !== 'deepseek_v3')
      refuse(
        named,
        `strata reads block FP8 only as DeepSeek-V3's weights, not on model_type '${modelType}' (${QUANT_SUPPORTED})`,
      );
    const fmt = quant.fmt ?? 'e4m3';
    if (fmt !== 'e4m3')
      refuse(`${named} fmt ${show(fmt)}`, `only e4m3 is read (${QUANT_SUPPORTED})`);
    const block = quant.weight_block_size;
    if (
      !Array.isArray(block) ||
      block.length !== 2 ||
      block[0] !== FP8_BLOCK[0] ||
      block[1] !== FP8_BLOCK[1]
    ) {
      refuse(
        `${named} weight_block_size ${show(block)}`,
        `only DeepSeek-V3's [128, 128] blocks are read (${QUANT_SUPPORTED})`,
      );
    }
    const extra = unknownKey(FP8_KEYS);
    if (extra !== undefined)
      refuse(`${named} key '${extra}'`, `is not understood (${QUANT_SUPPORTED})`);
    return { method: 'fp8', block: FP8_BLOCK };
  }
  return refuse(named);
}

// ---------------------------------------------------------------- decoders

/** e2m1 (the MXFP4 element): sign, 2 exponent bits with bias 1, 1 mantissa bit; no Inf or NaN. */
export function e2m1ToNumber(code: number): number {
  const sign = code & 0x8 ? -1 : 1;
  const exp = (code >> 1) & 0x3;
  const mant = code & 0x1;
  return sign * (exp === 0 ? mant * 0.5 : (1 + mant / 2) * 2 ** (exp - 1));
}

/** e8m0 (the MX block scale): 2^(s − 127); 0xFF is NaN (OCP MX v1.0), never a scale. */
export function e8m0ToNumber(s: number): number {
  return s === 0xff ? NaN : 2 ** (s - 127);
}

const E2M1 = Float32Array.from({ length: 16 }, (_, c) => e2m1ToNumber(c));
const E4M3 = Float32Array.from({ length: 256 }, (_, b) => f8e4m3BitsToNumber(b));

/**
 * Dequantises `experts` experts of MXFP4 blocks [experts, rows, groups, 16] with their scales
 * [experts, rows, groups] to the dense, transposed [experts, 32·groups, rows] (see the module
 * comment). Each value is an e2m1 value times a power of two, so f32 holds it exactly (short of
 * overflow for scales near 2^127).
 */
export function dequantMxfp4(
  blocks: Uint8Array,
  scales: Uint8Array,
  experts: number,
  rows: number,
  groups: number,
): Float32Array {
  const K = 32 * groups;
  if (blocks.length !== experts * rows * groups * 16 || scales.length !== experts * rows * groups)
    throw new Error(
      `MXFP4: ${blocks.length} block bytes / ${scales.length} scales for [${experts}, ${rows}, ${groups}]`,
    );
  const out = new Float32Array(experts * K * rows);
  for (let e = 0; e < experts; e++) {
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < groups; g++) {
        const at = (e * rows + r) * groups + g;
        const scale = e8m0ToNumber(scales[at]);
        for (let j = 0; j < 16; j++) {
          const byte = blocks[at * 16 + j];
          const k = 32 * g + 2 * j;
          out[(e * K + k) * rows + r] = E2M1[byte & 0xf] * scale;
          out[(e * K + k + 1) * rows + r] = E2M1[byte >> 4] * scale;
        }
      }
    }
  }
  return out;
}

/**
 * Dequantises a block-FP8 weight: e4m3 bytes [rows, cols] times the scale of their
 * [block[0], block[1]] block, scales [⌈rows/block[0]⌉, ⌈cols/block[1]⌉] row-major; the product is
 * rounded once to f32, as the references' f32 multiply does.
 */
export function dequantFp8Blocks(
  bytes: Uint8Array,
  scales: Float32Array,
  rows: number,
  cols: number,
  block: readonly [number, number],
): Float32Array {
  const scaleCols = Math.ceil(cols / block[1]);
  if (bytes.length !== rows * cols || scales.length !== Math.ceil(rows / block[0]) * scaleCols)
    throw new Error(`FP8: ${bytes.length} values / ${scales.length} scales for [${rows}, ${cols}]`);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const srow = Math.floor(r / block[0]) * scaleCols;
    for (let c = 0; c < cols; c++)
      out[r * cols + c] = E4M3[bytes[r * cols + c]] * scales[srow + Math.floor(c / block[1])];
  }
  return out;
}

// ---------------------------------------------------------------- the dequantising source

/** What the folder importer reads tensors through: the file source, or this module's view of it. */
export interface TensorSource {
  listTensors(): AvailableTensor[];
  readTensorF32(name: string): Promise<Float32Array>;
  readTensorSliceF32(name: string, slice: TensorSlice): Promise<Float32Array>;
}

interface Mxfp4Tensor {
  kind: 'mxfp4';
  blocks: string;
  scales: string;
  /** Stored [experts, rows, groups]. */
  experts: number;
  rows: number;
  groups: number;
}

interface Fp8Tensor {
  kind: 'fp8';
  scales: string;
  rows: number;
  cols: number;
  block: readonly [number, number];
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/**
 * The checkpoint as dense tensors: each MXFP4 pair X_blocks / X_scales becomes X, each F8_E4M3
 * weight W takes in W_scale_inv; every other tensor is read as it is. A pair that does not fit
 * together is an error naming its tensors.
 */
export function dequantizingSource(
  source: SafetensorsSource,
  quant: CheckpointQuant,
  where: string,
): TensorSource {
  const listed = source.listTensors();
  const byName = new Map(listed.map((t) => [t.name, t]));
  const virtual = new Map<string, Mxfp4Tensor | Fp8Tensor>();
  const consumed = new Set<string>();
  const list: AvailableTensor[] = [];
  function fail(msg: string): never {
    throw new Error(`${where}: ${msg}`);
  }
  for (const t of listed) {
    if (quant.method === 'mxfp4' && t.dtype === 'U8' && t.name.endsWith('_blocks')) {
      const base = t.name.slice(0, -'_blocks'.length);
      const scales = byName.get(`${base}_scales`);
      if (!scales) fail(`MXFP4 tensor '${t.name}' has no '${base}_scales' beside it`);
      const [E, R, G, B] = t.shape;
      if (t.shape.length !== 4 || B !== 16)
        fail(
          `MXFP4 tensor '${t.name}' has shape ${fmt(t.shape)}, expected [experts, rows, blocks, 16]`,
        );
      if (scales.dtype !== 'U8' || fmt(scales.shape) !== fmt([E, R, G]))
        fail(
          `MXFP4 scales '${scales.name}' are ${scales.dtype} ${fmt(scales.shape)}, expected U8 ${fmt([E, R, G])}`,
        );
      if (byName.has(base)) fail(`checkpoint has both '${base}' and its MXFP4 blocks '${t.name}'`);
      virtual.set(base, {
        kind: 'mxfp4',
        blocks: t.name,
        scales: scales.name,
        experts: E,
        rows: R,
        groups: G,
      });
      consumed.add(scales.name);
      list.push({ name: base, dtype: MXFP4_LABEL, shape: [E, 32 * G, R] });
    } else if (quant.method === 'fp8' && t.dtype === 'F8_E4M3') {
      const scaleName = `${t.name}_scale_inv`;
      const scales = byName.get(scaleName);
      if (!scales)
        fail(`F8_E4M3 tensor '${t.name}' has no '${scaleName}' (its block scales) beside it`);
      if (t.shape.length !== 2)
        fail(
          `F8_E4M3 tensor '${t.name}' has shape ${fmt(t.shape)}; only 2-D weights are block-scaled`,
        );
      const [rows, cols] = t.shape;
      const want = [Math.ceil(rows / quant.block[0]), Math.ceil(cols / quant.block[1])];
      if (!['F32', 'BF16', 'F16'].includes(scales.dtype) || fmt(scales.shape) !== fmt(want))
        fail(
          `block scales '${scaleName}' are ${scales.dtype} ${fmt(scales.shape)}, expected F32 ${fmt(want)} for '${t.name}' ${fmt(t.shape)}`,
        );
      virtual.set(t.name, { kind: 'fp8', scales: scaleName, rows, cols, block: quant.block });
      consumed.add(scaleName);
      list.push({ name: t.name, dtype: FP8_LABEL, shape: [rows, cols] });
    } else {
      list.push({ name: t.name, dtype: t.dtype, shape: t.shape });
    }
  }
  const available = list.filter((t) => !consumed.has(t.name));

  // The last experts dequantised: gpt-oss reads an expert's gate and its up from the same fused
  // gate_up tensor, one after the other, and dequantising it is most of the import's time.
  let last: { key: string; values: Float32Array } | null = null;
  /** Experts [first, first + count) of an MXFP4 tensor, dense: [count, 32·groups, rows]. */
  const readExperts = async (q: Mxfp4Tensor, first: number, count: number) => {
    const key = `${q.blocks}:${first}:${count}`;
    if (last?.key === key) return last.values;
    const per = q.rows * q.groups;
    const [blocks, scales] = await Promise.all([
      source.readTensorByteRange(q.blocks, first * per * 16, (first + count) * per * 16),
      source.readTensorByteRange(q.scales, first * per, (first + count) * per),
    ]);
    last = { key, values: dequantMxfp4(blocks, scales, count, q.rows, q.groups) };
    return last.values;
  };
  const readFp8 = async (name: string, q: Fp8Tensor) => {
    const [bytes, scales] = await Promise.all([
      source.readTensorBytes(name),
      source.readTensorF32(q.scales),
    ]);
    return dequantFp8Blocks(bytes, scales, q.rows, q.cols, q.block);
  };

  return {
    listTensors: () => available,
    readTensorF32: async (name) => {
      const q = virtual.get(name);
      if (!q) return source.readTensorF32(name);
      // A copy: the dequantised experts are kept for the next read.
      return q.kind === 'mxfp4' ? (await readExperts(q, 0, q.experts)).slice() : readFp8(name, q);
    },
    readTensorSliceF32: async (name, slice) => {
      const q = virtual.get(name);
      if (!q) return source.readTensorSliceF32(name, slice);
      if (q.kind === 'fp8') {
        const shape = [q.rows, q.cols];
        const span = sliceSpan(name, shape, slice);
        const values = await readFp8(name, q);
        return gatherSlice(values.subarray(span.first, span.end), span.first, shape, slice);
      }
      // Dequantise only the experts the box covers (one per canonical tensor for gpt-oss), then
      // take the box out of those experts' dense [count, 32·groups, rows].
      sliceSpan(name, [q.experts, 32 * q.groups, q.rows], slice);
      const [first, count] = [slice.start[0], slice.size[0]];
      const values = await readExperts(q, first, count);
      const shape = [count, 32 * q.groups, q.rows];
      const local = { start: [0, ...slice.start.slice(1)], size: slice.size };
      const span = sliceSpan(name, shape, local);
      // gatherSlice returns a contiguous box as the view it is given: copy it out of the cache.
      const box = gatherSlice(values.subarray(span.first, span.end), span.first, shape, local);
      return box.buffer === values.buffer ? box.slice() : box;
    },
  };
}
