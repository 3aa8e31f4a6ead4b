/**
 * Zamba2Config (HF `zamba2`): Mamba-2 layers; at each "hybrid" layer one of num_mem_blocks shared
 * transformer blocks (cycled in order of use) runs on [x, embeddings] with that use's LoRA
 * adapters, and its output, through the layer's own linear, joins the Mamba-2 layer's input
 * (see SharedBlockSpec). transformers saves each shared block once, under the first layer that
 * uses it, with every use's adapters there indexed by the use's position among the hybrid layers.
 */
import type { LayerSpec, MlpSpec, ModelIR, SharedBlockSpec } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { readActivation } from './hf-decoder.ts';
import { attentionSpec, readKvHeads } from './hf-attention.ts';
import { modelIR } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import { readMamba2, rms } from './hf-ssm-shared.ts';
import {
  EMBED,
  FINAL_NORM,
  LM_HEAD,
  expectedTensors,
  layerPrefix,
  sharedBlockNames,
  sharedUseNames,
} from './names.ts';
import type { FamilyImport } from './registry.ts';

/** layers_block_type entries: transformers 5 writes the Mamba layers as "linear_attention". */
const LAYER_TYPES: Readonly<Record<string, 'mamba' | 'hybrid'>> = {
  mamba: 'mamba',
  linear_attention: 'mamba',
  hybrid: 'hybrid',
};

/** Zamba2Config's default layout (Zamba2-2.7B's): hybrid after every sixth Mamba layer, then sparser. */
function defaultLayout(): string[] {
  return [
    'mamba',
    ...Array.from({ length: 7 }, () => [...Array(5).fill('mamba'), 'hybrid']).flat(),
    ...Array(4).fill('mamba'),
    'hybrid',
    ...Array(3).fill('mamba'),
    'hybrid',
    ...Array(2).fill('mamba'),
  ];
}

function readLayout(cfg: ConfigReader): ('mamba' | 'hybrid')[] {
  const raw = cfg.optStringList('layers_block_type') ?? defaultLayout();
  const types = raw.map((t) => {
    const kind = Object.hasOwn(LAYER_TYPES, t) ? LAYER_TYPES[t] : undefined;
    if (!kind) cfg.fail('layers_block_type', `unknown layer type ${show(t)} (mamba or hybrid)`);
    return kind;
  });
  const n = cfg.positiveInt('num_hidden_layers', 54);
  if (n !== types.length) {
    cfg.fail('num_hidden_layers', `is ${n} but layers_block_type lists ${types.length} layers`);
  }
  // Derived by the config class; a saved copy must agree with the layout.
  const hybrid = types.flatMap((t, i) => (t === 'hybrid' ? [i] : []));
  const saved = cfg.raw('hybrid_layer_ids');
  if (saved !== undefined && saved !== null && show(saved) !== show(hybrid)) {
    cfg.fail(
      'hybrid_layer_ids',
      `${show(saved)} disagrees with layers_block_type (${show(hybrid)})`,
    );
  }
  return types;
}

/** A derived config value that the class recomputes: a saved copy must match. */
function derived(cfg: ConfigReader, key: string, want: number): void {
  if (cfg.has(key) && cfg.raw(key) !== null && cfg.num(key) !== want) {
    cfg.fail(key, `is ${cfg.num(key)}, but Zamba2Config derives ${want}`);
  }
  cfg.ignore(key);
}

export function importZamba2(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 2560);
  const types = readLayout(cfg);
  const norm = rms(cfg, 'rms_norm_eps', 1e-5);
  let maxContext = cfg.positiveInt('max_position_embeddings', 4096);

  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, heads);
  if ((2 * dim) % heads !== 0) {
    cfg.fail('num_attention_heads', `${heads} does not divide 2 × hidden_size (${2 * dim})`);
  }
  // The shared attention reads [x, embeddings]: 2·hidden wide, and so are its heads together.
  const headDim = (2 * dim) / heads;
  derived(cfg, 'attention_head_dim', headDim);
  derived(cfg, 'attention_hidden_size', 2 * dim);
  // Megatron bookkeeping the modeling code never reads.
  derived(cfg, 'kv_channels', Math.floor(dim / heads));
  derived(cfg, 'num_query_groups', heads);
  const useRope = cfg.bool('use_mem_rope', false);
  const longContext = cfg.bool('use_long_context', false);
  let rope = null;
  if (useRope) {
    if (longContext) {
      cfg.fail('use_long_context', 'rescales the shared attention RoPE base; not supported yet');
    }
    rope = readRope(cfg, {
      headDim,
      maxPositions: maxContext,
      defaultTheta: 10000,
      family: 'zamba2',
    });
  } else {
    // Without RoPE the long-context switch only raises max_position_embeddings.
    if (longContext) maxContext = 16384;
    cfg.ignore('rope_theta', 'rope_parameters', 'rope_scaling');
  }
  const bias = cfg.bool('add_bias_linear', false);
  const ffn: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 4 * dim),
    act: readActivation(cfg, 'hidden_act', 'gelu'),
    gated: true,
    bias,
  };
  const blockCount = cfg.positiveInt('num_mem_blocks', 1);
  const adapterRank = cfg.positiveInt('adapter_rank', 128);
  const attentionAdapters = cfg.bool('use_shared_attention_adapter', false);
  // Zamba2MLP builds its gate/up adapters whatever this key says.
  const mlpAdapterKey = cfg.raw('use_shared_mlp_adapter');
  if (mlpAdapterKey === false) {
    cfg.fail('use_shared_mlp_adapter', "is false, but transformers' Zamba2MLP always has adapters");
  }
  cfg.ignore('use_shared_mlp_adapter');
  const sharedBlocks: SharedBlockSpec[] = Array.from({ length: blockCount }, (_, k) => ({
    kind: 'shared',
    name: `shared${k}`,
    attention: attentionSpec(heads, kvHeads, headDim, rope, {
      // Zamba2Attention scales by (head_dim / 2)^-0.5: head_dim counts both halves of [x, e].
      scale: (headDim / 2) ** -0.5,
    }),
    ffn,
    adapterRank,
    attentionAdapters,
    ffnAdapters: true,
  }));

  const mamba = readMamba2(
    cfg,
    dim,
    {
      heads: 'n_mamba_heads',
      headDim: 'mamba_headdim',
      dState: 'mamba_d_state',
      groups: 'mamba_ngroups',
      dConv: 'mamba_d_conv',
      expand: 'mamba_expand',
      chunk: 'chunk_size',
      convBias: 'use_conv_bias',
      projBias: 'add_bias_linear',
    },
    { heads: 8, headDim: 'auto', dState: 64, groups: 1, chunk: 256 },
    // Zamba2RMSNormGated normalises each of the n_groups groups, with eps fixed at 1e-5.
    { eps: 1e-5, perGroup: true },
  );
  // transformers' reference path (torch_forward) clamps dt from below by time_step_min and
  // ignores time_step_limit, which only its CUDA-kernel path reads: a set limit would make the
  // two disagree, so only the default (none) is accepted.
  if (cfg.raw('time_step_limit') !== undefined && cfg.raw('time_step_limit') !== null) {
    cfg.fail('time_step_limit', 'is set; transformers applies it only on its CUDA-kernel path');
  }
  const dtMin = cfg.num('time_step_min', 0.001);
  if (!(dtMin >= 0)) cfg.fail('time_step_min', `must be >= 0, got ${dtMin}`);
  const mixer = { ...mamba, dtMin, dtMax: null };
  cfg.ignore(
    'time_step_max',
    'time_step_floor',
    // Kernel choices of the Python implementation.
    'use_mamba_kernels',
    'use_mem_eff_path',
    // How many prompt logits generate() computes.
    'num_logits_to_keep',
  );

  let uses = 0;
  const useOf = new Map<number, { block: number; use: number }>();
  const layers = types.map((t, index): LayerSpec => {
    const layer: LayerSpec = { index, mixerName: 'mamba', mixer, ffnName: null, ffn: null };
    if (t === 'hybrid') {
      const use = uses++;
      useOf.set(index, { block: use % blockCount, use });
      layer.shared = sharedBlocks[use % blockCount].name;
    }
    return layer;
  });
  const model: ModelIR = {
    ...modelIR(name, layers, norm, {
      vocab: cfg.positiveInt('vocab_size', 32000),
      dim,
      tie: cfg.bool('tie_word_embeddings', true),
      maxContext,
    }),
    // A block no hybrid layer reaches (num_mem_blocks above the hybrid count) has no tensors
    // in the checkpoint and computes nothing: leave it out.
    sharedBlocks: sharedBlocks.slice(0, Math.min(blockCount, uses)),
  };
  return { model, ...zamba2Weights(model, useOf), storedShapes: conv3d(model) };
}

/** HF conv weights are [channels, 1, kernel]; strata's [channels, kernel]. */
function conv3d(model: ModelIR): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const t of expectedTensors(model)) {
    if (/\.conv1d\.weight$/.test(t.name)) out[t.name] = [t.shape[0], 1, t.shape[1]];
  }
  return out;
}

/** Canonical name → checkpoint name, for the layout transformers saves (see the file comment). */
function zamba2Weights(
  model: ModelIR,
  useOf: Map<number, { block: number; use: number }>,
): { weightMap: Record<string, string> } {
  const weightMap: Record<string, string> = {
    [EMBED]: EMBED,
    [`${FINAL_NORM}.weight`]: 'model.final_layernorm.weight',
    // An untied head is saved under the canonical name (Zamba2ForCausalLM.lm_head).
    [LM_HEAD]: LM_HEAD,
  };
  const firstUse = new Map<number, number>();
  for (const [layer, { block }] of useOf) if (!firstUse.has(block)) firstUse.set(block, layer);
  const sharedPrefix = (block: number) => `${layerPrefix(firstUse.get(block)!)}.shared_transformer`;
  (model.sharedBlocks ?? []).forEach((s, k) => {
    if (!firstUse.has(k)) return;
    const n = sharedBlockNames(s.name);
    const p = sharedPrefix(k);
    const pairs: [string, string][] = [
      [n.inputNorm, `${p}.input_layernorm`],
      [n.q, `${p}.self_attn.q_proj`],
      [n.k, `${p}.self_attn.k_proj`],
      [n.v, `${p}.self_attn.v_proj`],
      [n.o, `${p}.self_attn.o_proj`],
      [n.ffnNorm, `${p}.pre_ff_layernorm`],
      [n.gateUp, `${p}.feed_forward.gate_up_proj`],
      [n.down, `${p}.feed_forward.down_proj`],
    ];
    for (const [from, to] of pairs) {
      weightMap[`${from}.weight`] = `${to}.weight`;
      weightMap[`${from}.bias`] = `${to}.bias`;
    }
  });
  for (const layer of model.layers) {
    const i = layer.index;
    const hf = layerPrefix(i);
    const u = useOf.get(i);
    const mambaPrefix = u ? `${hf}.mamba_decoder` : hf;
    weightMap[`${hf}.input_layernorm.weight`] = `${mambaPrefix}.input_layernorm.weight`;
    if (!u) continue;
    const n = sharedUseNames(i);
    const p = sharedPrefix(u.block);
    weightMap[`${n.linear}.weight`] = `${hf}.linear.weight`;
    const adapters: [{ down: string; up: string }, string][] = [
      [n.q, `${p}.self_attn.linear_q_adapter_list.${u.use}`],
      [n.k, `${p}.self_attn.linear_k_adapter_list.${u.use}`],
      [n.v, `${p}.self_attn.linear_v_adapter_list.${u.use}`],
      [n.gateUp, `${p}.feed_forward.gate_up_proj_adapter_list.${u.use}`],
    ];
    for (const [a, to] of adapters) {
      weightMap[`${a.down}.weight`] = `${to}.0.weight`;
      weightMap[`${a.up}.weight`] = `${to}.1.weight`;
    }
  }
  const out: Record<string, string> = {};
  for (const t of expectedTensors(model)) {
    const mixer = t.name.match(/^model\.layers\.(\d+)\.mixer\.(.*)$/);
    if (mixer) {
      const i = Number(mixer[1]);
      out[t.name] = `${layerPrefix(i)}${useOf.has(i) ? '.mamba_decoder' : ''}.mamba.${mixer[2]}`;
    } else {
      const to = weightMap[t.name];
      if (!to) throw new Error(`zamba2 import: no checkpoint name for '${t.name}'`);
      out[t.name] = to;
    }
  }
  return { weightMap: out };
}
