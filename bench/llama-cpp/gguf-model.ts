/**
 * A strata llama model (ModelIR + weights) as the GGUF files llama.cpp's converter and quantiser
 * would make of it, so llama.cpp benchmarks exactly the numbers strata runs:
 * - metadata: architecture `llama` and the keys llama.cpp needs to load it (dims, heads, RoPE
 *   base, RMS eps, context), plus a dummy `gpt2` tokenizer (256 byte tokens, filler tokens, 256
 *   control tokens; llama-bench feeds token ids and never tokenises text);
 * - Llama 3 RoPE scaling as the tensor rope_freqs.weight (per-frequency divisors, the
 *   converter's way; src/import/gguf-rope.ts reads them back);
 * - q/k projection rows in GGML's RoPE order (the inverse of src/import/gguf.ts's ggufRowsToHf);
 * - each tensor's type as strata's --precision gives it (src/passes/precision.ts): 1-D tensors
 *   f32, matrices at the precision, except that under q4 the output head (the embedding table
 *   when tied) is q8. Q8_0 and Q4_0 blocks hold the codes and scales of strata's own encoder
 *   (src/ops/weight-storage.ts encodeWeight, GGUF's rules), relaid from strata's layout (all
 *   codes, then all scales) into GGUF's blocks (scale, then the block's codes).
 * Before writing, the planned header is read back through strata's GGUF importer and must give the
 * same ModelIR: a model with anything this writer does not express is refused, naming the field.
 */
import {
  isQuantized,
  quantScaleOffset,
  QUANT_BLOCK,
  type WeightType,
} from '../../src/graph/dtype.ts';
import type { WeightProvider } from '../../src/graph/params.ts';
import { encodeWeight } from '../../src/ops/weight-storage.ts';
import type { AttentionSpec, ModelIR } from '../../src/spec/model.ts';
import { expectedTensors, EMBED, LM_HEAD } from '../../src/import/names.ts';
import {
  ggufTensorName,
  importGgufMetadata,
  ROPE_FREQS,
  type GgufMetadataValue,
} from '../../src/import/gguf.ts';
import { llama3Divisors } from '../../src/import/gguf-rope.ts';
import { ggmlTypeName, type GgufTensor } from '../../formats/gguf.ts';
import {
  bool,
  f32,
  ggmlBytes,
  GGML,
  str,
  u32,
  type GgufKv,
  type GgufTensorInfo,
} from '../../formats/gguf-write.ts';
import { GgufFileWriter } from '../../formats/node/gguf-file-writer.ts';

/** GGML type of each stored weight type. */
export const GGML_TYPE: Readonly<Record<WeightType, number>> = {
  f32: GGML.F32,
  f16: GGML.F16,
  q8: GGML.Q8_0,
  q4: GGML.Q4_0,
};

/** general.file_type (llama.cpp's llama_ftype) of a file written at each precision. */
const FILE_TYPE: Readonly<Record<WeightType, number>> = { f32: 0, f16: 1, q8: 7, q4: 2 };

/** The GGUF file-name suffix of each precision, as llama.cpp names its types. */
export const GGUF_SUFFIX: Readonly<Record<WeightType, string>> = {
  f32: 'F32',
  f16: 'F16',
  q8: 'Q8_0',
  q4: 'Q4_0',
};

/** One tensor of the file: its GGUF and canonical names, shape, stored type, q/k heads. */
export interface PlannedTensor {
  name: string;
  /** strata's canonical name; null for rope_freqs.weight, which the writer computes. */
  canonical: string | null;
  shape: number[];
  type: WeightType;
  /** Heads of a q/k projection whose rows are reordered into GGML's RoPE order. */
  ropeHeads: number | null;
}

export interface GgufPlan {
  metadata: Record<string, GgufKv>;
  tensors: PlannedTensor[];
  /** rope_freqs.weight's values, when the model uses Llama 3 RoPE scaling. */
  ropeFreqs: Float32Array | null;
}

const fail = (model: ModelIR, why: string): never => {
  throw new Error(`GGUF llama writer, model '${model.name}': ${why}`);
};

/** GPT-2's byte-to-character map: the 256 single-character byte tokens of a `gpt2` vocabulary. */
function byteTokens(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) =>
    String.fromCodePoint(printable(b) ? b : 256 + extra++),
  );
}

/** The dummy tokenizer: needs room for 256 byte tokens and 256 control tokens. */
function tokenizer(vocab: number): Record<string, GgufKv> {
  const SPECIAL = 256;
  if (vocab < 2 * SPECIAL)
    throw new Error(
      `GGUF llama writer: vocab ${vocab} is too small for the dummy tokenizer (256 byte tokens + 256 control tokens)`,
    );
  const tokens = byteTokens();
  for (let i = 256; i < vocab - SPECIAL; i++) tokens.push(`<tok${i}>`);
  for (let i = 0; i < SPECIAL; i++) tokens.push(`<|special_${i}|>`);
  const NORMAL = 1;
  const CONTROL = 3;
  return {
    'tokenizer.ggml.model': str('gpt2'),
    'tokenizer.ggml.pre': str('llama-bpe'),
    'tokenizer.ggml.tokens': { type: 'string[]', value: tokens },
    'tokenizer.ggml.token_type': {
      type: 'i32[]',
      value: tokens.map((_, i) => (i < vocab - SPECIAL ? NORMAL : CONTROL)),
    },
    'tokenizer.ggml.merges': { type: 'string[]', value: [] },
    'tokenizer.ggml.bos_token_id': u32(vocab - SPECIAL),
    'tokenizer.ggml.eos_token_id': u32(vocab - SPECIAL + 1),
    'tokenizer.ggml.add_bos_token': bool(true),
  };
}

/**
 * The type strata stores canonical tensor `name` as under `precision` (the rule of
 * src/passes/precision.ts for a llama: every matrix is a matmul weight or the embedding table).
 */
export function storedType(
  model: ModelIR,
  name: string,
  shape: readonly number[],
  precision: WeightType,
): WeightType {
  if (shape.length !== 2) return 'f32';
  const head = name === LM_HEAD || (model.tieEmbeddings && name === EMBED);
  const want: WeightType = precision === 'q4' && head ? 'q8' : precision;
  return isQuantized(want) && shape[1] % QUANT_BLOCK !== 0 ? 'f16' : want;
}

/** The header values as the GGUF parser returns them (for strata's importer). */
function parsedValues(metadata: Record<string, GgufKv>): Record<string, GgufMetadataValue> {
  const out: Record<string, GgufMetadataValue> = {};
  for (const [k, v] of Object.entries(metadata))
    out[k] = Array.isArray(v.value)
      ? ([...(v.value as unknown[])] as GgufMetadataValue)
      : (v.value as GgufMetadataValue);
  return out;
}

/** Labels that name parts of a model (a spec's own words) without changing its math. */
const LABELS = new Set(['name', 'mixerName', 'ffnName']);

/** Where two models differ in anything but labels (a path and both values), or null. */
export function modelDifference(a: ModelIR, b: ModelIR): string | null {
  return firstDifference(a, b);
}

function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null)
    return Object.is(a, b)
      ? null
      : `${path || '(root)'}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    if (LABELS.has(k)) continue;
    const d = firstDifference(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      path ? `${path}.${k}` : k,
    );
    if (d) return d;
  }
  return null;
}

/** The file layout of `model` at `precision`; refuses a model the files would not express. */
export function planGguf(model: ModelIR, precision: WeightType): GgufPlan {
  const attn = model.layers[0]?.mixer;
  if (!attn || attn.kind !== 'attention') fail(model, `layer 0 is not attention`);
  const a = attn as AttentionSpec;
  if (!a.rope) fail(model, 'attention without RoPE has no llama GGUF form');
  const rope = a.rope!;
  const metadata: Record<string, GgufKv> = {
    'general.architecture': str('llama'),
    'general.name': str(`${model.name}-${GGUF_SUFFIX[precision]}`),
    'general.alignment': u32(32),
    'general.file_type': u32(FILE_TYPE[precision]),
    'llama.vocab_size': u32(model.vocab),
    'llama.context_length': u32(model.maxContext),
    'llama.embedding_length': u32(model.dim),
    'llama.block_count': u32(model.layers.length),
    'llama.feed_forward_length': u32(
      model.layers[0].ffn?.kind === 'mlp' ? model.layers[0].ffn.hidden : 0,
    ),
    'llama.attention.head_count': u32(a.heads),
    'llama.attention.head_count_kv': u32(a.kvHeads),
    'llama.attention.key_length': u32(a.headDim),
    'llama.attention.value_length': u32(a.headDim),
    'llama.rope.dimension_count': u32(rope.rotaryDim),
    'llama.rope.freq_base': f32(rope.theta),
    'llama.attention.layer_norm_rms_epsilon': f32(model.norm.eps),
  };
  let ropeFreqs: Float32Array | null = null;
  const s = rope.scaling;
  if (s.kind === 'llama3') {
    ropeFreqs = Float32Array.from(
      llama3Divisors(rope.theta, a.headDim, {
        factor: s.factor,
        low: s.lowFreqFactor,
        high: s.highFreqFactor,
        orig: s.originalMaxPositions,
      }),
    );
  } else if (s.kind === 'linear') {
    metadata['llama.rope.scaling.type'] = str('linear');
    metadata['llama.rope.scaling.factor'] = f32(s.factor);
  } else if (s.kind !== 'none') fail(model, `RoPE scaling '${s.kind}' is not written to GGUF`);
  Object.assign(metadata, tokenizer(model.vocab));

  const tensors: PlannedTensor[] = [];
  if (ropeFreqs)
    tensors.push({
      name: ROPE_FREQS,
      canonical: null,
      shape: [ropeFreqs.length],
      type: 'f32',
      ropeHeads: null,
    });
  for (const t of expectedTensors(model)) {
    const name = ggufTensorName(t.name) ?? fail(model, `tensor '${t.name}' has no GGUF name`);
    const qk = /^model\.layers\.(\d+)\.self_attn\.([qk])_proj\.(weight|bias)$/.exec(t.name);
    let ropeHeads: number | null = null;
    if (qk) {
      const m = model.layers[Number(qk[1])].mixer as AttentionSpec;
      ropeHeads = qk[2] === 'q' ? m.heads : m.kvHeads;
    }
    tensors.push({
      name,
      canonical: t.name,
      shape: [...t.shape],
      type: storedType(model, t.name, t.shape, precision),
      ropeHeads,
    });
  }

  // What strata's importer makes of this header must be the model itself.
  let offset = 0;
  const index: GgufTensor[] = tensors.map((t) => {
    const type = GGML_TYPE[t.type];
    const elements = t.shape.reduce((x, y) => x * y, 1);
    const byteLength = ggmlBytes(type, elements);
    const entry = {
      name: t.name,
      type,
      typeName: ggmlTypeName(type),
      shape: t.shape,
      elements,
      offset,
      byteLength,
    };
    offset += byteLength;
    return entry;
  });
  const back = importGgufMetadata(
    parsedValues(metadata),
    index,
    'planned GGUF',
    model.name,
    ropeFreqs,
  ).model;
  const diff = firstDifference(back, model);
  if (diff)
    fail(
      model,
      `its GGUF form reads back differently (${diff}); the writer does not express this model`,
    );
  return { metadata, tensors, ropeFreqs };
}

/** HF row order → GGML's RoPE order within each head: HF row h·d + a·d/2 + i goes to h·d + 2i + a. */
export function hfRowsToGguf(w: Float32Array, heads: number, cols: number): Float32Array {
  const d = w.length / cols / heads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < d / 2; i++)
      for (let a = 0; a < 2; a++) {
        const src = (h * d + a * (d / 2) + i) * cols;
        out.set(w.subarray(src, src + cols), (h * d + 2 * i + a) * cols);
      }
  return out;
}

/**
 * strata's stored q8/q4 bytes (all codes, then all f16 scales; src/graph/dtype.ts) → GGUF Q8_0 /
 * Q4_0 blocks (scale, then the block's codes; Q4_0 packs codes j and j + 16 into byte j).
 */
export function ggufBlocks(t: 'q8' | 'q4', stored: Uint8Array, n: number): Uint8Array {
  const blocks = n / QUANT_BLOCK;
  // Scales as little-endian f16 bits, whatever the view's alignment.
  const sAt = quantScaleOffset(t, n);
  const scale = (b: number) => stored[sAt + 2 * b] | (stored[sAt + 2 * b + 1] << 8);
  if (t === 'q8') {
    const out = new Uint8Array(34 * blocks);
    for (let b = 0; b < blocks; b++) {
      const s = scale(b);
      out[34 * b] = s & 0xff;
      out[34 * b + 1] = s >> 8;
      out.set(stored.subarray(32 * b, 32 * b + 32), 34 * b + 2);
    }
    return out;
  }
  const out = new Uint8Array(18 * blocks);
  const code = (i: number) => (stored[i >> 1] >> (4 * (i & 1))) & 15;
  for (let b = 0; b < blocks; b++) {
    const s = scale(b);
    out[18 * b] = s & 0xff;
    out[18 * b + 1] = s >> 8;
    for (let j = 0; j < 16; j++)
      out[18 * b + 2 + j] = code(32 * b + j) | (code(32 * b + j + 16) << 4);
  }
  return out;
}

/** A tensor's values (rows in GGUF order) → its bytes in the file at type t. */
export function ggufBytes(t: WeightType, x: Float32Array, cols: number): Uint8Array {
  if (t === 'f32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const stored = encodeWeight(t, x, cols);
  // f16 storage pads to whole u32 words; GGUF holds exactly two bytes an element.
  if (t === 'f16') return stored.subarray(0, 2 * x.length);
  return ggufBlocks(t, stored, x.length);
}

/**
 * Writes `model` with `weights` at each precision of `files` (precision → path), reading each
 * weight once for all files and holding one tensor at a time.
 */
export async function writeModelGgufs(
  model: ModelIR,
  weights: WeightProvider,
  files: Partial<Record<WeightType, string>>,
  log: (m: string) => void = () => {},
): Promise<void> {
  const outs = Object.entries(files).map(([p, path]) => {
    const precision = p as WeightType;
    const plan = planGguf(model, precision);
    const infos: GgufTensorInfo[] = plan.tensors.map((t) => ({
      name: t.name,
      type: GGML_TYPE[t.type],
      shape: t.shape,
      byteLength: ggmlBytes(
        GGML_TYPE[t.type],
        t.shape.reduce((x, y) => x * y, 1),
      ),
    }));
    return { plan, writer: new GgufFileWriter(path!, plan.metadata, infos) };
  });
  if (outs.length === 0) return;
  const tensors = outs[0].plan.tensors;
  for (let k = 0; k < tensors.length; k++) {
    const t = tensors[k];
    let x = t.canonical === null ? outs[0].plan.ropeFreqs! : await weights(t.canonical);
    const cols = t.shape.length === 2 ? t.shape[1] : x.length;
    if (t.ropeHeads !== null) x = hfRowsToGguf(x, t.ropeHeads, cols);
    for (const { plan, writer } of outs) {
      const type = plan.tensors[k].type;
      writer.write(t.name, ggufBytes(type, x, cols));
    }
    if (x.length > 1e7) log(`${t.name}: ${x.length} elements written`);
  }
  for (const { writer } of outs)
    log(`wrote ${writer.path}: ${(writer.close() / 1e9).toFixed(3)} GB`);
}
