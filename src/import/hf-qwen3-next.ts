/**
 * Qwen3NextConfig (HF `qwen3_next`): layer i is a gated DeltaNet mixer ('linear_attention') or
 * gated full attention ('full_attention': q_proj also emits a sigmoid output gate, qk-norm,
 * partial rotary) by layer_types, which defaults to full attention every
 * full_attention_interval-th layer. FFNs follow Qwen3-MoE's rule (mlp_only_layers,
 * decoder_sparse_step) with a shared expert scaled by its sigmoid gate. Every RMSNorm,
 * qk-norm included, is zero-centred (scales by 1 + w); the DeltaNet's output norm is a plain
 * one inside the mixer. Defaults are those of the transformers config class.
 */
import { type GatedDeltaNetSpec, type LayerSpec, type MlpSpec } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { readActivation } from './hf-decoder.ts';
import { qwen3MoeFfns, type LayerFfn } from './hf-moe.ts';
import { attentionSpec, readKvHeads } from './hf-attention.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import type { FamilyImport } from './registry.ts';
import { expectedTensors } from './names.ts';

const LAYER_TYPES = new Set(['linear_attention', 'full_attention']);

function layerTypes(cfg: ConfigReader, n: number): string[] {
  const written = cfg.optStringList('layer_types');
  if (written) {
    cfg.ignore('full_attention_interval');
    if (written.length !== n)
      cfg.fail('layer_types', `has ${written.length} entries for ${n} layers`);
    const bad = written.find((t) => !LAYER_TYPES.has(t));
    if (bad !== undefined) {
      cfg.fail('layer_types', `entry ${show(bad)} is not linear_attention or full_attention`);
    }
    return written;
  }
  const interval = cfg.positiveInt('full_attention_interval', 4);
  return Array.from({ length: n }, (_, i) =>
    (i + 1) % interval === 0 ? 'full_attention' : 'linear_attention',
  );
}

export function importQwen3Next(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 2048);
  const n = cfg.positiveInt('num_hidden_layers', 48);
  const heads = cfg.positiveInt('num_attention_heads', 16);
  const kvHeads = readKvHeads(cfg, heads, 2);
  const headDim = cfg.positiveInt('head_dim', 256);
  const act = readActivation(cfg, 'hidden_act', 'silu');
  // The DeltaNet's conv and output gate use hidden_act too; its kernels implement SiLU.
  if (act !== 'silu') cfg.fail('hidden_act', 'must be silu (it is also the DeltaNet activation)');
  const eps = cfg.num('rms_norm_eps', 1e-6);
  if (!(eps > 0)) cfg.fail('rms_norm_eps', `must be positive, got ${eps}`);
  const maxContext = cfg.positiveInt('max_position_embeddings', 32768);
  const bias = cfg.bool('attention_bias', false);
  // use_sliding_window / sliding_window are leftovers of Qwen2's config: the class reads neither.
  if (cfg.bool('use_sliding_window', false)) {
    cfg.fail('use_sliding_window', 'is set; Qwen3-Next has no sliding window');
  }
  cfg.ignore('sliding_window', 'max_window_layers');
  const rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: 10000,
    family: 'qwen3_next',
    defaultPartial: 0.25,
  });
  const attention = attentionSpec(heads, kvHeads, headDim, rope, {
    qkNorm: true,
    bias,
    outputGate: true,
  });
  const deltanet: GatedDeltaNetSpec = {
    kind: 'gated_deltanet',
    keyHeads: cfg.positiveInt('linear_num_key_heads', 16),
    valueHeads: cfg.positiveInt('linear_num_value_heads', 32),
    keyHeadDim: cfg.positiveInt('linear_key_head_dim', 128),
    valueHeadDim: cfg.positiveInt('linear_value_head_dim', 128),
    dConv: cfg.positiveInt('linear_conv_kernel_dim', 4),
    normEps: eps,
  };
  if (deltanet.valueHeads % deltanet.keyHeads !== 0) {
    cfg.fail(
      'linear_num_value_heads',
      `${deltanet.valueHeads} is not a multiple of linear_num_key_heads ${deltanet.keyHeads}`,
    );
  }
  const dense: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 5632),
    act,
    gated: true,
    bias: false,
  };
  const ffns = qwen3NextFfns(cfg, n, dense);
  const types = layerTypes(cfg, n);
  const layers = types.map((t, index): LayerSpec => ({
    index,
    mixerName: t === 'full_attention' ? 'attn' : 'deltanet',
    mixer: t === 'full_attention' ? structuredClone(attention) : { ...deltanet },
    ffnName: ffns[index].name,
    ffn: ffns[index].spec,
  }));
  const model = modelIR(name, layers, rmsNorm(eps, true), {
    vocab: cfg.positiveInt('vocab_size', 151936),
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext,
  });
  const weightMap: Record<string, string> = {};
  const storedShapes: Record<string, number[]> = {};
  for (const t of expectedTensors(model)) {
    weightMap[t.name] = t.name;
    // nn.Conv1d(groups=channels) stores [channels, 1, kernel]: the same elements as [C, K].
    if (/\.conv1d\.weight$/.test(t.name)) storedShapes[t.name] = [t.shape[0], 1, t.shape[1]];
  }
  return { model, weightMap, storedShapes };
}

/**
 * Qwen3-MoE's layer rule with Qwen3-Next's defaults, plus the shared expert
 * (shared_expert_intermediate_size wide; 0 for none) under its sigmoid gate.
 */
function qwen3NextFfns(cfg: ConfigReader, n: number, dense: MlpSpec): LayerFfn[] {
  const shared = cfg.int('shared_expert_intermediate_size', 512);
  if (shared < 0) cfg.fail('shared_expert_intermediate_size', `must be at least 0, got ${shared}`);
  const defaults = { experts: 512, topK: 10, hidden: 512, normalize: true };
  return qwen3MoeFfns(cfg, n, dense, defaults).map((f) =>
    f.spec.kind === 'moe' && shared > 0
      ? { ...f, spec: { ...f.spec, shared: { ...dense, hidden: shared }, sharedGate: true } }
      : f,
  );
}
