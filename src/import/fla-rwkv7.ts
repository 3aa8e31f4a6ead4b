/**
 * fla's RWKV-7 (model_type `rwkv7`, fla/models/rwkv7): every layer is RWKV7Block, i.e. the
 * time mixing `rwkv7(...)` (src/mixers/rwkv7.ts) and the channel mixing `rwkv7_cmix(...)` (an
 * ungated relu² MLP over token-shifted rows), LayerNorms with bias (`norm_bias`), and with
 * `norm_first` a LayerNorm on the embeddings in layer 0 (`pre_norm`). Defaults are fla's
 * RWKV7Config (fla 0.5.2); fla-hub's released checkpoints (rwkv7-*-world, -pile, -g1) use it.
 *
 * transformers ≥ 5.x also has a native `rwkv7` (Rwkv7ForCausalLM, RWKV-LM's tensor names
 * `blocks.N.att.*`); its configs name that architecture and are refused here by name.
 */
import type { MlpSpec, ModelIR, NormSpec } from '../spec/model.ts';
import type { Rwkv7Spec } from '../mixers/rwkv7.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { flaModel, flaWeights, readFlaShell } from './fla-common.ts';
import { layerPrefix } from './names.ts';
import type { FamilyImport } from './registry.ts';

/** fla's RWKV7FeedForward: key, sqrelu, value; int(dim · hidden_ratio) rounded up to 32 unless given. */
function readChannelMix(cfg: ConfigReader, dim: number): MlpSpec {
  const act = cfg.str('hidden_act', 'sqrelu');
  if (act !== 'sqrelu') cfg.fail('hidden_act', `is '${act}'; strata's rwkv7_cmix is sqrelu only`);
  const ratio = cfg.has('hidden_ratio') ? cfg.num('hidden_ratio') : 4;
  const hidden = cfg.has('intermediate_size')
    ? cfg.positiveInt('intermediate_size')
    : 32 * Math.ceil(Math.trunc(dim * ratio) / 32);
  cfg.ignore('intermediate_size', 'hidden_ratio');
  if (!(hidden >= 1)) cfg.fail('hidden_ratio', `gives an FFN width of ${hidden}`);
  return { kind: 'mlp', hidden, act: 'relu2', gated: false, bias: false, tokenShift: true };
}

/**
 * Heads as fla derives them: head_dim (64 when absent) wins, and heads = hidden_size / head_dim;
 * only a null head_dim lets num_heads set it. Keys are hidden_size wide either way.
 */
function readHeads(cfg: ConfigReader, dim: number): { heads: number; headDim: number } {
  const given = cfg.has('num_heads') ? cfg.positiveInt('num_heads') : null;
  cfg.ignore('num_heads');
  let headDim: number;
  if (cfg.raw('head_dim') !== null) headDim = cfg.positiveInt('head_dim', 64);
  else if (given !== null && dim % given === 0) headDim = dim / given;
  else if (given !== null)
    return cfg.fail('num_heads', `${given} does not divide hidden_size ${dim}`);
  else return cfg.fail('head_dim', 'and num_heads are both null; fla needs one of them');
  if (dim % headDim !== 0) cfg.fail('head_dim', `${headDim} does not divide hidden_size ${dim}`);
  const heads = dim / headDim;
  if (given !== null && given !== heads) {
    cfg.fail(
      'num_heads',
      `is ${given}, but hidden_size / head_dim is ${heads} (fla uses the latter)`,
    );
  }
  return { heads, headDim };
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * A LoRA rank: RWKV7Config's default when the key is absent; when it is null, RWKV7Attention's
 * own size, max(32, round(c·√dim·factor / 32)·32), factor = head_dim / 64 except for the gate.
 */
function readRank(
  cfg: ConfigReader,
  key: string,
  absent: number,
  dim: number,
  c: number,
  factor: number,
): number {
  if (cfg.raw(key) !== null) return cfg.positiveInt(key, absent);
  return Math.max(32, roundHalfEven((c * Math.sqrt(dim) * factor) / 32) * 32);
}

/** value_dim: null (the hidden size), one width, or one per layer; v_first needs them equal. */
function readValueDim(cfg: ConfigReader, dim: number, layers: number): number {
  const raw = cfg.raw('value_dim');
  if (raw === undefined || raw === null) return dim;
  const list = Array.isArray(raw) ? raw : [raw];
  const ok =
    (!Array.isArray(raw) || raw.length === layers) &&
    list.every((v) => Number.isInteger(v) && v >= dim && v % dim === 0);
  if (!ok) {
    cfg.fail(
      'value_dim',
      `must be multiples of hidden_size ${dim}, one per layer, got ${show(raw)}`,
    );
  }
  if (new Set(list).size > 1) {
    cfg.fail(
      'value_dim',
      `differs between layers (${show(raw)}); every layer mixes in layer 0's values`,
    );
  }
  return list[0] as number;
}

export function importFlaRwkv7(cfg: ConfigReader, name: string): FamilyImport {
  const arch = cfg.raw('architectures');
  if (Array.isArray(arch) && arch.includes('Rwkv7ForCausalLM')) {
    cfg.fail(
      'architectures',
      "is transformers' native Rwkv7ForCausalLM; strata reads fla's RWKV7ForCausalLM layout",
    );
  }
  // Hub bookkeeping: the remote-code class map and transformers' attention-implementation flag.
  cfg.ignore('auto_map', '_attn_implementation_autoset');
  const shell = readFlaShell(cfg, { dim: 2048, layers: 24, eps: 1e-5 }, readChannelMix);
  // RWKV7Block unpacks four results from its mixer and fla's Attention returns three: fla cannot
  // run an `attn` layer in this model type.
  const attn = cfg.raw('attn');
  if (attn !== undefined && attn !== null) {
    cfg.fail('attn', `is ${show(attn)}; fla's RWKV7Block cannot run its Attention layers`);
  }
  const norm: NormSpec = {
    kind: 'layer',
    eps: shell.eps,
    unitOffset: false,
    bias: cfg.bool('norm_bias', true),
  };
  const { heads, headDim } = readHeads(cfg, shell.dim);
  const valueDim = readValueDim(cfg, shell.dim, shell.layers);
  // fla checks value_dim ≥ hidden_size and divisible by it, so heads divide it too.
  const spec: Rwkv7Spec = {
    kind: 'rwkv7',
    heads,
    headDim,
    valueHeadDim: valueDim / heads,
    decayRank: readRank(cfg, 'decay_low_rank_dim', 64, shell.dim, 2.5, headDim / 64),
    aRank: readRank(cfg, 'a_low_rank_dim', 64, shell.dim, 2.5, headDim / 64),
    vRank: readRank(cfg, 'v_low_rank_dim', 16, shell.dim, 1.7, headDim / 64),
    gateRank: readRank(cfg, 'gate_low_rank_dim', 128, shell.dim, 5, 1),
    normEps: shell.eps,
    // fuse_norm picks fla's l2_norm (eps 1e-6 under the root) or F.normalize (x / max(‖x‖,
    // 1e-12), which eps 1e-24 under the root matches wherever ‖x‖ ≫ 1e-12).
    kkEps: cfg.bool('fuse_norm', true) ? 1e-6 : 1e-24,
    normFirst: cfg.bool('norm_first', true),
  };
  const model = flaModel(name, { ...shell, norm }, null, 'rwkv7', () => ({ ...spec }));
  return { model, ...rwkv7Weights(model) };
}

/** fla's names: the mixer's are canonical already; the channel mix is `ffn.key`/`ffn.value`. */
function rwkv7Weights(model: ModelIR): Omit<FamilyImport, 'model'> {
  const { weightMap, storedShapes } = flaWeights(model, (n) =>
    n
      .replace(/\.post_attention_layernorm\./, '.ffn_norm.')
      .replace(/\.mlp\.up_proj\./, '.ffn.key.')
      .replace(/\.mlp\.down_proj\./, '.ffn.value.')
      .replace(/\.mlp\.x_k$/, '.ffn.x_k'),
  );
  for (const layer of model.layers) {
    const m = layer.mixer;
    if (m?.kind !== 'rwkv7') continue;
    const p = `${layerPrefix(layer.index)}.attn`;
    // nn.Parameter(1, 1, dim) mixes and the per-head r_k, stored in those shapes.
    for (const c of ['r', 'w', 'k', 'v', 'a', 'g']) storedShapes[`${p}.x_${c}`] = [1, 1, model.dim];
    storedShapes[`${p}.r_k`] = [m.heads, m.headDim];
  }
  return { weightMap, storedShapes };
}
