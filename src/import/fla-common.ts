/**
 * What every model type of flash-linear-attention (fla) shares, for the importers in
 * src/import/fla-<type>.ts: the config keys of the model shell (hidden size, layers, norms, the
 * GatedMLP), the hybrid `attn` key that puts softmax attention at some layers, and the map from
 * strata's canonical tensor names to fla's (`model.embeddings`, `attn_norm`, `mlp_norm`, mixers
 * under `attn`). Defaults are those of fla's config classes (fla 0.5.2).
 */
import type {
  AttentionSpec,
  LayerSpec,
  MixerSpec,
  MlpSpec,
  ModelIR,
  NormSpec,
} from '../spec/model.ts';
import { isConfigObject, show, type ConfigObject, type ConfigReader } from './config-reader.ts';
import { attentionSpec } from './hf-attention.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { EMBED, expectedTensors } from './names.ts';
import type { FamilyImport } from './registry.ts';

/** The model shell of an fla causal LM, read from its config. */
export interface FlaShell {
  dim: number;
  layers: number;
  vocab: number;
  eps: number;
  tie: boolean;
  maxContext: number;
  /** The FFN every layer has: fla's GatedMLP (SwiGLU with fla's swish = SiLU) unless a type has its own. */
  ffn: MlpSpec;
  /** The norm of every sublayer and the final one: RMSNorm unless a type has its own. */
  norm: NormSpec;
}

/**
 * Keys fla configs carry that change nothing strata computes: kernel and training switches
 * (the fused norms and SwiGLU compute the same function), `attn_mode`, which picks a kernel
 * (chunk, fused_chunk, fused_recurrent) for the same recurrence, and `use_l2warp`, whose L2Wrap
 * (fla/modules/l2warp.py) returns the loss unchanged and only adds to the logits' gradient.
 */
const FLA_HARMLESS = [
  'attn_mode',
  'fuse_norm',
  'fuse_swiglu',
  'fuse_cross_entropy',
  'fuse_linear_cross_entropy',
  'elementwise_affine',
  'use_l2warp',
];

/**
 * The shell's keys, with `defaults` the config class's (hidden size, layers...); `readFfn` reads
 * the FFN's keys (fla's GatedMLP unless a type has its own).
 */
export function readFlaShell(
  cfg: ConfigReader,
  defaults: { dim: number; layers: number; eps?: number; vocab?: number; hiddenRatio?: number },
  readFfn: (cfg: ConfigReader, dim: number) => MlpSpec = (c, d) =>
    readGatedMlp(c, d, defaults.hiddenRatio ?? 4),
): FlaShell {
  cfg.ignore(...FLA_HARMLESS);
  // Training-time options that would change the forward pass if set.
  if (cfg.raw('attnres_block_size') !== undefined && cfg.raw('attnres_block_size') !== null) {
    cfg.fail(
      'attnres_block_size',
      `is ${show(cfg.raw('attnres_block_size'))}; strata supports only null`,
    );
  }
  if (cfg.has('elementwise_affine') && cfg.raw('elementwise_affine') !== true) {
    cfg.fail('elementwise_affine', 'must be true (norms with weights)');
  }
  const dim = cfg.positiveInt('hidden_size', defaults.dim);
  const eps = cfg.num('norm_eps', defaults.eps ?? 1e-6);
  if (!(eps > 0)) cfg.fail('norm_eps', `must be positive, got ${eps}`);
  return {
    dim,
    layers: cfg.positiveInt('num_hidden_layers', defaults.layers),
    vocab: cfg.positiveInt('vocab_size', defaults.vocab ?? 32000),
    eps,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext: cfg.positiveInt('max_position_embeddings', 2048),
    ffn: readFfn(cfg, dim),
    norm: rmsNorm(eps),
  };
}

/**
 * fla's GatedMLP: SwiGLU of hidden_ratio · dim · 2/3 rounded up to a multiple of 256 unless
 * given; `defaultRatio` is the config class's hidden_ratio (4, RetNet's 2).
 */
function readGatedMlp(cfg: ConfigReader, dim: number, defaultRatio: number): MlpSpec {
  // GatedMLP raises on anything but swish and powlu, so no fla model has another hidden_act.
  const act = cfg.str('hidden_act', 'swish');
  if (act !== 'swish') {
    cfg.fail(
      'hidden_act',
      `must be swish (got '${act}'): fla's GatedMLP takes swish or powlu, and strata implements swish`,
    );
  }
  // Absent: the config class's default; null reaches GatedMLP, which takes 4.
  const ratio = cfg.raw('hidden_ratio') === undefined ? defaultRatio : cfg.num('hidden_ratio', 4);
  const hidden = cfg.has('intermediate_size')
    ? cfg.positiveInt('intermediate_size')
    : 256 * Math.ceil(Math.trunc((dim * ratio * 2) / 3) / 256);
  cfg.ignore('intermediate_size');
  return { kind: 'mlp', hidden, act: 'silu', gated: true, bias: false };
}

const ATTN_KEYS = new Set([
  'layers',
  'num_heads',
  'num_kv_heads',
  'qkv_bias',
  'qk_norm',
  'window_size',
  'rope_theta',
]);

/**
 * fla's hybrid key: `attn: {layers, num_heads, num_kv_heads, qkv_bias, window_size, rope_theta}`
 * puts fla.layers.attn.Attention (RoPE on the whole head, NeoX halves; head dim hidden/heads) at
 * the listed layers. null when the config has none.
 */
export function readFlaAttention(
  cfg: ConfigReader,
  shell: FlaShell,
): { layers: Set<number>; spec: AttentionSpec } | null {
  const raw = cfg.raw('attn');
  if (raw === undefined || raw === null) return null;
  if (!isConfigObject(raw)) return cfg.fail('attn', `must be an object, got ${show(raw)}`);
  const attn: ConfigObject = raw;
  for (const k of Object.keys(attn)) {
    if (!ATTN_KEYS.has(k))
      cfg.fail('attn', `has key '${k}', which strata's fla importer does not know`);
  }
  const sub = cfg.derived(attn, cfg.where, (k) => `attn.${k}`);
  const list = sub.raw('layers');
  if (
    !Array.isArray(list) ||
    !list.every((i) => Number.isInteger(i) && i >= 0 && i < shell.layers)
  ) {
    sub.fail(
      'layers',
      `must list layer indices below num_hidden_layers (${shell.layers}), got ${show(list)}`,
    );
  }
  const heads = sub.positiveInt('num_heads');
  const kvHeads = sub.has('num_kv_heads') ? sub.positiveInt('num_kv_heads') : heads;
  if (heads % kvHeads !== 0)
    sub.fail('num_kv_heads', `${kvHeads} does not divide num_heads ${heads}`);
  if (shell.dim % heads !== 0)
    sub.fail('num_heads', `${heads} does not divide hidden_size ${shell.dim}`);
  if (sub.bool('qk_norm', false)) sub.fail('qk_norm', 'is set; strata does not import it yet');
  const headDim = shell.dim / heads;
  const window = sub.has('window_size') ? sub.positiveInt('window_size') : null;
  const rope = {
    theta: sub.num('rope_theta', 10000),
    rotaryDim: headDim,
    scaling: { kind: 'none' } as const,
  };
  // fla's o_proj never has a bias; qkv_bias sets q, k and v's.
  const spec = {
    ...attentionSpec(heads, kvHeads, headDim, rope, { window }),
    qkvBias: sub.bool('qkv_bias', false),
  };
  return { layers: new Set(list as number[]), spec };
}

/** The ModelIR of an fla model: `mixerAt(i)` at every layer the `attn` key does not claim. */
export function flaModel(
  name: string,
  shell: FlaShell,
  attn: { layers: Set<number>; spec: AttentionSpec } | null,
  mixerName: string,
  mixerAt: (layer: number) => MixerSpec,
): ModelIR {
  const layers = Array.from({ length: shell.layers }, (_, index): LayerSpec => {
    const isAttn = attn?.layers.has(index) ?? false;
    return {
      index,
      mixerName: isAttn ? 'attn' : mixerName,
      mixer: isAttn ? structuredClone(attn!.spec) : mixerAt(index),
      ffnName: 'mlp',
      ffn: { ...shell.ffn },
    };
  });
  return modelIR(name, layers, shell.norm, {
    vocab: shell.vocab,
    dim: shell.dim,
    tie: shell.tie,
    maxContext: shell.maxContext,
  });
}

/** Canonical name → fla's: the shell's renames, then `rename` for what a family names itself. */
export function flaWeights(
  model: ModelIR,
  rename: (canonical: string) => string = (n) => n,
): Omit<FamilyImport, 'model'> {
  const weightMap: Record<string, string> = {};
  const storedShapes: Record<string, number[]> = {};
  for (const t of expectedTensors(model)) {
    const fla = rename(t.name)
      .replace(EMBED, 'model.embeddings.weight')
      .replace(/\.input_layernorm\./, '.attn_norm.')
      .replace(/\.post_attention_layernorm\./, '.mlp_norm.')
      .replace(/\.self_attn\./, '.attn.');
    weightMap[t.name] = fla;
    // fla's ShortConvolution is nn.Conv1d(groups=channels): [channels, 1, kernel].
    if (/conv1d\.weight$/.test(fla) && t.shape.length === 2) {
      storedShapes[t.name] = [t.shape[0], 1, t.shape[1]];
    }
  }
  return { weightMap, storedShapes };
}

/**
 * The head layout of fla's linear-attention layers: `num_heads` query heads, `num_kv_heads`
 * key/value heads (null: num_heads), and total widths int(hidden · expand_k) and
 * int(hidden · expand_v) split evenly over the query heads, as the layers assert.
 */
export function readFlaHeads(
  cfg: ConfigReader,
  shell: FlaShell,
  defaults: { heads: number; expandK: number; expandV: number },
): { heads: number; kvHeads: number; keyHeadDim: number; valueHeadDim: number } {
  const heads = cfg.positiveInt('num_heads', defaults.heads);
  const kvHeads = cfg.has('num_kv_heads') ? cfg.positiveInt('num_kv_heads') : heads;
  cfg.ignore('num_kv_heads');
  if (heads % kvHeads !== 0) {
    cfg.fail('num_kv_heads', `${kvHeads} does not divide num_heads ${heads}`);
  }
  const width = (key: string, fallback: number) => {
    const expand = cfg.num(key, fallback);
    // Python's int() of hidden_size * expand: truncation toward zero.
    const total = Math.trunc(shell.dim * expand);
    if (!(total > 0) || total % heads !== 0) {
      cfg.fail(
        key,
        `${expand} gives a width of ${total}, not a positive multiple of num_heads ${heads}`,
      );
    }
    return total / heads;
  };
  return {
    heads,
    kvHeads,
    keyHeadDim: width('expand_k', defaults.expandK),
    valueHeadDim: width('expand_v', defaults.expandV),
  };
}
