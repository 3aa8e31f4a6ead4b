/**
 * GGUF metadata and tensor index → ModelIR plus the map from strata's canonical tensor names to
 * the file's (browser-safe: reading the file is gguf-file.ts's job). The metadata is translated
 * key by key into the HF config the same checkpoint has, which the HF importer of that model type
 * then reads, so a GGUF model and its HF original get one ModelIR by construction; messages name
 * the GGUF keys. Keys that would change the model's math and are not translated are refused by
 * name, as are tensors strata would not use. Llama 3's RoPE scaling has no keys: it comes from the
 * tensor rope_freqs.weight (gguf-rope.ts).
 *
 * llama.cpp's converter reorders the rows of a `llama` model's q and k projections (weights and
 * biases) within each head: HF's RoPE rotates row i with row i + d/2 (rotate_half), GGML's
 * `llama` RoPE rotates rows 2i and 2i + 1, so the converter moves HF row i + a·d/2 (a = 0, 1;
 * i < d/2) of each head to row 2i + a. The reader moves them back (ggufRowsToHf). k uses the
 * key/value head count. `qwen3` keeps HF's order (GGML runs it with the NeoX rotation).
 */
import type { GgufTensor } from '../../formats/gguf.ts';
import { unreadableReason } from '../../formats/gguf.ts';
import type { AttentionSpec, ModelIR } from '../spec/model.ts';
import { importHfConfig } from './hf.ts';
import { llama3FromDivisors } from './gguf-rope.ts';
import { expectedTensors, type TensorSpec } from './names.ts';

/** A metadata value as @huggingface/gguf returns it. */
export type GgufMetadataValue =
  number | bigint | string | boolean | GgufMetadataValue[] | undefined;

export interface GgufImport {
  model: ModelIR;
  /** Canonical strata tensor name → GGUF tensor name. */
  weightMap: Record<string, string>;
  /** Canonical name → heads of a q/k tensor whose rows the converter reordered (see above). */
  ropeRows: Record<string, number>;
  /** The tensors the model needs, under canonical names. */
  tensors: TensorSpec[];
}

interface Architecture {
  /** The HF model_type whose importer reads the translated config. */
  modelType: string;
  /** Whether q/k rows are in GGML's interleaved RoPE order. */
  ropeRows: boolean;
}

const ARCHITECTURES: Readonly<Record<string, Architecture>> = {
  llama: { modelType: 'llama', ropeRows: true },
  qwen3: { modelType: 'qwen3', ropeRows: false },
};

/** Key prefixes that never change the network: file bookkeeping, tokenizer, quantiser notes. */
const HARMLESS_PREFIXES = ['general.', 'tokenizer.', 'quantize.'];
const HARMLESS_KEYS = new Set(['version', 'tensor_count', 'kv_count', 'split.no']);

/** `<arch>.` keys that are informational only. */
const HARMLESS_ARCH_KEYS = new Set(['rope.scaling.finetuned']);

/** GGUF tensor name of each canonical name, by pattern (N is the layer). */
const TENSOR_RULES: ReadonlyArray<[RegExp, string]> = [
  [/^model\.embed_tokens\.weight$/, 'token_embd.weight'],
  [/^model\.norm\.weight$/, 'output_norm.weight'],
  [/^lm_head\.weight$/, 'output.weight'],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, 'blk.$1.attn_norm.weight'],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, 'blk.$1.ffn_norm.weight'],
  [/^model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$/, 'blk.$1.attn_$2.$3'],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)$/, 'blk.$1.attn_output.$2'],
  [/^model\.layers\.(\d+)\.self_attn\.([qk])_norm\.weight$/, 'blk.$1.attn_$2_norm.weight'],
  [/^model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.(weight|bias)$/, 'blk.$1.ffn_$2.$3'],
];

export function ggufTensorName(canonical: string): string | null {
  for (const [re, to] of TENSOR_RULES) if (re.test(canonical)) return canonical.replace(re, to);
  return null;
}

/** Llama 3's RoPE scaling, stored as per-frequency divisors (gguf-rope.ts). */
export const ROPE_FREQS = 'rope_freqs.weight';

const ROPE_ROWS = /^model\.layers\.(\d+)\.self_attn\.([qk])_proj\.(weight|bias)$/;

function fail(source: string, message: string): never {
  throw new Error(`${source}: ${message}`);
}

const show = (v: GgufMetadataValue): string =>
  Array.isArray(v) ? `an array of ${v.length}` : typeof v === 'string' ? `'${v}'` : String(v);

/**
 * `source` names the file in messages; `name` becomes the model's name. `tensors` is the file's
 * tensor index; every tensor the model needs must be there, in a type strata reads, and nothing
 * else may be.
 */
export function importGgufMetadata(
  metadata: Readonly<Record<string, GgufMetadataValue>>,
  tensors: readonly GgufTensor[],
  source: string,
  name: string,
  /** The values of the file's rope_freqs.weight, where it has one (Llama 3 RoPE scaling). */
  ropeFreqs: Float32Array | null = null,
): GgufImport {
  const archName = metadata['general.architecture'];
  if (typeof archName !== 'string') fail(source, `no general.architecture (got ${show(archName)})`);
  const arch = Object.hasOwn(ARCHITECTURES, archName) ? ARCHITECTURES[archName] : null;
  if (!arch) {
    fail(
      source,
      `general.architecture '${archName}' is not supported (strata reads ${Object.keys(ARCHITECTURES).join(', ')})`,
    );
  }
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const config = translateMetadata(metadata, archName, arch, byName, ropeFreqs, source);
  // HF key → the GGUF key it came from, so the HF importer's messages name the GGUF key.
  const from = config.from;
  const imported = importHfConfig(config.hf, source, undefined, (k) =>
    Object.hasOwn(from, k) ? from[k] : `${k} (derived from the GGUF metadata)`,
  );
  // importHfConfig names the model after its source; the file path stays in messages only.
  const model: ModelIR = { ...imported.model, name };
  const needed = expectedTensors(model);
  const weightMap: Record<string, string> = {};
  const ropeRows: Record<string, number> = {};
  const problems: string[] = [];
  for (const t of needed) {
    const g = ggufTensorName(t.name);
    if (g === null) {
      problems.push(`strata tensor '${t.name}' has no GGUF name`);
      continue;
    }
    weightMap[t.name] = g;
    const got = byName.get(g);
    const label = `'${g}' (strata '${t.name}')`;
    if (!got) problems.push(`missing tensor ${label}, expected shape [${t.shape.join(', ')}]`);
    else if (got.shape.join() !== t.shape.join())
      problems.push(
        `tensor ${label} has shape [${got.shape.join(', ')}], expected [${t.shape.join(', ')}]`,
      );
    else {
      const why = unreadableReason(got);
      if (why !== null) problems.push(why);
    }
    const rope = arch.ropeRows ? ROPE_ROWS.exec(t.name) : null;
    if (rope) {
      const mixer = model.layers[Number(rope[1])].mixer as AttentionSpec;
      ropeRows[t.name] = rope[2] === 'q' ? mixer.heads : mixer.kvHeads;
    }
  }
  if (problems.length > 0) {
    fail(source, `tensors do not match the metadata:\n  ${problems.join('\n  ')}`);
  }
  const used = new Set(Object.values(weightMap));
  if (ropeFreqs) used.add(ROPE_FREQS);
  const unused = tensors.map((t) => t.name).filter((n) => !used.has(n));
  if (unused.length > 0) {
    fail(source, `tensors strata would not use: ${unused.map((n) => `'${n}'`).join(', ')}`);
  }
  return { model, weightMap, ropeRows, tensors: needed };
}

interface Translated {
  hf: Record<string, unknown>;
  from: Record<string, string>;
}

function translateMetadata(
  metadata: Readonly<Record<string, GgufMetadataValue>>,
  archName: string,
  arch: Architecture,
  tensors: ReadonlyMap<string, GgufTensor>,
  ropeFreqs: Float32Array | null,
  source: string,
): Translated {
  const p = `${archName}.`;
  const used = new Set<string>();
  const hf: Record<string, unknown> = { model_type: arch.modelType };
  const from: Record<string, string> = {};
  const raw = (key: string): GgufMetadataValue => {
    used.add(p + key);
    return metadata[p + key];
  };
  const int = (key: string, required: boolean): number | null => {
    const v = raw(key);
    if (v === undefined) return required ? fail(source, `GGUF key '${p}${key}' is required`) : null;
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
      fail(source, `GGUF key '${p}${key}' must be a positive integer, got ${show(v)}`);
    }
    return n;
  };
  const num = (key: string): number | null => {
    const v = raw(key);
    if (v === undefined) return null;
    if (typeof v !== 'number' || !Number.isFinite(v))
      fail(source, `GGUF key '${p}${key}' must be a number, got ${show(v)}`);
    return shortestDecimal(v);
  };
  const set = (hfKey: string, value: unknown, key: string) => {
    hf[hfKey] = value;
    from[hfKey] = p + key;
  };

  const dim = int('embedding_length', true)!;
  set('hidden_size', dim, 'embedding_length');
  set('num_hidden_layers', int('block_count', true), 'block_count');
  set('intermediate_size', int('feed_forward_length', true), 'feed_forward_length');
  const heads = int('attention.head_count', true)!;
  set('num_attention_heads', heads, 'attention.head_count');
  // llama.cpp: head_count_kv absent means as many as the query heads.
  set(
    'num_key_value_heads',
    int('attention.head_count_kv', false) ?? heads,
    'attention.head_count_kv',
  );
  const keyLength = int('attention.key_length', false);
  const valueLength = int('attention.value_length', false);
  if (keyLength !== null && valueLength !== null && keyLength !== valueLength) {
    fail(
      source,
      `GGUF key '${p}attention.value_length' is ${valueLength} but '${p}attention.key_length' is ${keyLength}; strata needs one head size`,
    );
  }
  const headDim = keyLength ?? valueLength ?? dim / heads;
  if (!Number.isInteger(headDim)) {
    fail(source, `GGUF key '${p}embedding_length' ${dim} is not a multiple of ${heads} heads`);
  }
  set(
    'head_dim',
    headDim,
    keyLength !== null
      ? 'attention.key_length'
      : valueLength !== null
        ? 'attention.value_length'
        : 'embedding_length',
  );
  const ropeDims = int('rope.dimension_count', false);
  if (ropeDims !== null && ropeDims !== headDim) {
    fail(
      source,
      `GGUF key '${p}rope.dimension_count' is ${ropeDims} but heads have ${headDim} dims; partial RoPE from GGUF is not supported`,
    );
  }
  const eps = num('attention.layer_norm_rms_epsilon');
  if (eps === null) fail(source, `GGUF key '${p}attention.layer_norm_rms_epsilon' is required`);
  set('rms_norm_eps', eps, 'attention.layer_norm_rms_epsilon');
  // llama.cpp's default base when the key is absent, as HF's.
  const theta = num('rope.freq_base') ?? 10000;
  set('rope_theta', theta, 'rope.freq_base');
  set('max_position_embeddings', int('context_length', true), 'context_length');

  // The vocabulary: the key, else the tokenizer's list, else the embedding's rows.
  const tokens = metadata['tokenizer.ggml.tokens'];
  const vocabKey = int('vocab_size', false);
  if (vocabKey !== null) set('vocab_size', vocabKey, 'vocab_size');
  else if (Array.isArray(tokens)) {
    hf.vocab_size = tokens.length;
    from.vocab_size = 'tokenizer.ggml.tokens';
  } else {
    const embd = tensors.get('token_embd.weight');
    if (!embd) fail(source, `no ${p}vocab_size, tokenizer.ggml.tokens or token_embd.weight`);
    hf.vocab_size = embd.shape[0];
    from.vocab_size = 'token_embd.weight';
  }

  // Tensors say what the metadata does not: tied output, biases.
  hf.tie_word_embeddings = !tensors.has('output.weight');
  hf.attention_bias = tensors.has('blk.0.attn_q.bias');
  if (arch.modelType === 'llama') hf.mlp_bias = tensors.has('blk.0.ffn_up.bias');

  const scalingType = raw('rope.scaling.type');
  const oldLinear = num('rope.scale_linear');
  const factor = num('rope.scaling.factor');
  // Read (so not refused) but unused: only YaRN needs the original context length.
  int('rope.scaling.original_context_length', false);
  if (ropeFreqs) {
    if (
      (scalingType !== undefined && scalingType !== 'none') ||
      factor !== null ||
      oldLinear !== null
    ) {
      fail(
        source,
        `has both '${ROPE_FREQS}' and ${p}rope.scaling keys; strata reads one RoPE scaling`,
      );
    }
    const llama3 = llama3FromDivisors(ropeFreqs, theta, headDim);
    if (typeof llama3 === 'string') {
      fail(
        source,
        `tensor '${ROPE_FREQS}' (per-frequency RoPE divisors, llama3 scaling): ${llama3}`,
      );
    }
    hf.rope_scaling = llama3;
    from.rope_scaling = ROPE_FREQS;
  } else if (scalingType === undefined || scalingType === 'none') {
    if (oldLinear !== null && oldLinear !== 1) {
      set('rope_scaling', { rope_type: 'linear', factor: oldLinear }, 'rope.scale_linear');
    } else if (factor !== null && factor !== 1) {
      fail(source, `GGUF key '${p}rope.scaling.factor' is ${factor} with no rope.scaling.type`);
    }
  } else if (scalingType === 'linear') {
    const f =
      factor ?? fail(source, `GGUF key '${p}rope.scaling.factor' is required for linear scaling`);
    set('rope_scaling', { rope_type: 'linear', factor: f }, 'rope.scaling.type');
  } else {
    fail(
      source,
      `GGUF key '${p}rope.scaling.type' is ${show(scalingType)}; strata reads none and linear from GGUF`,
    );
  }

  for (const key of Object.keys(metadata)) {
    if (used.has(key) || HARMLESS_KEYS.has(key)) continue;
    if (HARMLESS_PREFIXES.some((h) => key.startsWith(h))) continue;
    if (key.startsWith(p) && HARMLESS_ARCH_KEYS.has(key.slice(p.length))) continue;
    const v = metadata[key];
    if (key === 'split.count' && Number(v) === 1) continue;
    if (key === 'split.count') {
      fail(source, `GGUF key 'split.count' is ${show(v)}: split GGUF files are not supported`);
    }
    if (key === 'split.tensors.count') continue;
    if ((key === `${p}expert_count` || key === `${p}expert_used_count`) && Number(v) === 0)
      continue;
    fail(
      source,
      `GGUF key '${key}' (${show(v)}) is not one strata's GGUF ${archName} reader knows; it may change the model's math`,
    );
  }
  return { hf, from };
}

/**
 * A llama.cpp-converted q/k tensor (rows of `cols`, `heads` heads) back in HF's row order: GGUF
 * row h·d + 2i + a is HF row h·d + a·d/2 + i.
 */
export function ggufRowsToHf(
  w: Float32Array,
  heads: number,
  cols: number,
  name: string,
): Float32Array {
  const rows = w.length / cols;
  const d = rows / heads;
  if (!Number.isInteger(rows) || !Number.isInteger(d) || d % 2 !== 0) {
    throw new Error(
      `tensor '${name}': ${w.length} elements are not ${heads} heads of even size × ${cols}`,
    );
  }
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      for (let a = 0; a < 2; a++) {
        const src = (h * d + 2 * i + a) * cols;
        out.set(w.subarray(src, src + cols), (h * d + a * (d / 2) + i) * cols);
      }
    }
  }
  return out;
}

/**
 * The shortest decimal that rounds to the f32 `v`. GGUF stores float settings as f32, so the
 * converter's 1e-5 arrives as 9.99999974e-6; the decimal a config wrote is the shortest one that
 * names the same f32 (for a value that was already an f32, it is that value).
 */
export function shortestDecimal(v: number): number {
  const f = Math.fround(v);
  if (f !== v) return v;
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(v.toPrecision(digits));
    if (Math.fround(d) === f) return d;
  }
  return v;
}
