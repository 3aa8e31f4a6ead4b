/**
 * config.json writers of the state-space and hybrid HF types: the inverses of hf-mamba.ts,
 * hf-mamba2.ts, hf-jamba.ts, hf-bamba.ts, hf-nemotron-h.ts, hf-granite.ts, hf-zamba2.ts,
 * hf-falcon-h1.ts, hf-lfm2.ts and hf-qwen3-next.ts. Like hf-decoders.ts each writes one setting
 * per layer kind, from the first layer of that kind, and hf-config.ts checks the result by
 * importing it back.
 */
import type {
  AttentionSpec,
  GatedDeltaNetSpec,
  Mamba1Spec,
  Mamba2Spec,
  ModelIR,
  ParallelSpec,
  ShortConvSpec,
} from '../spec/model.ts';
import {
  actName,
  baseKeys,
  firstMixer,
  firstMlp,
  firstMoe,
  indices,
  invertExactly,
  isMoe,
  mixerKind,
  refuse,
  requireFfns,
  requireMixers,
  ropeParameters,
  type JsonObject,
} from './hf-common.ts';
import { qwenMoeKeys } from './hf-decoders.ts';

/** time_step_limit, omitted at its default (0, inf). */
function dtLimit(s: Mamba2Spec): JsonObject {
  if (s.dtMin === 0 && s.dtMax === null) return {};
  return { time_step_limit: [s.dtMin, s.dtMax ?? Infinity] };
}

/** expand for an inner width that must be expand × hidden_size. */
function expandOf(type: string, inner: number, dim: number): number {
  if (inner % dim !== 0) {
    refuse(
      type,
      `a mamba inner width of ${inner}`,
      `${type} makes it expand × hidden_size (${dim})`,
    );
  }
  return inner / dim;
}

function attentionKeys(a: AttentionSpec | null, withHeadDim: boolean): JsonObject {
  if (!a) return {};
  return {
    num_attention_heads: a.heads,
    num_key_value_heads: a.kvHeads,
    ...(withHeadDim ? { head_dim: a.headDim } : {}),
  };
}

export function exportMamba(m: ModelIR): JsonObject {
  const type = 'mamba';
  requireMixers(type, m, ['mamba1']);
  requireFfns(type, m, ['none']);
  const s = firstMixer(m, 'mamba1') as Mamba1Spec;
  return {
    ...baseKeys(type, 'MambaForCausalLM', m, false),
    expand: expandOf(type, s.dInner, m.dim),
    intermediate_size: s.dInner,
    state_size: s.dState,
    conv_kernel: s.dConv,
    time_step_rank: s.dtRank,
    use_conv_bias: s.convBias,
    use_bias: s.projBias,
    hidden_act: 'silu',
    layer_norm_epsilon: m.norm.eps,
  };
}

export function exportMamba2(m: ModelIR): JsonObject {
  const type = 'mamba2';
  requireMixers(type, m, ['mamba2']);
  requireFfns(type, m, ['none']);
  const s = firstMixer(m, 'mamba2') as Mamba2Spec;
  return {
    ...baseKeys(type, 'Mamba2ForCausalLM', m, false),
    num_heads: s.heads,
    head_dim: s.headDim,
    expand: expandOf(type, s.heads * s.headDim, m.dim),
    state_size: s.dState,
    n_groups: s.groups,
    conv_kernel: s.dConv,
    chunk_size: s.chunk,
    use_conv_bias: s.convBias,
    use_bias: s.projBias,
    rms_norm: true,
    hidden_act: 'silu',
    layer_norm_epsilon: m.norm.eps,
    ...dtLimit(s),
  };
}

/** Bamba's mamba_* keys, which granitemoehybrid shares. */
function bambaMambaKeys(type: string, s: Mamba2Spec | null, dim: number): JsonObject {
  if (!s) return {};
  return {
    mamba_n_heads: s.heads,
    mamba_d_head: s.headDim,
    mamba_d_state: s.dState,
    mamba_n_groups: s.groups,
    mamba_d_conv: s.dConv,
    mamba_expand: expandOf(type, s.heads * s.headDim, dim),
    mamba_chunk_size: s.chunk,
    mamba_conv_bias: s.convBias,
    mamba_proj_bias: s.projBias,
    ...dtLimit(s),
  };
}

/** The layers at period·k + offset, or null where `at` is no such pattern in n layers. */
function periodOf(at: number[], n: number): { period: number; offset: number } | null {
  if (at.length === 0) return { period: n + 1, offset: n };
  const offset = at[0];
  for (let period = offset + 1; period <= n + 1; period++) {
    const want = Array.from({ length: n }, (_, i) => i).filter((i) => i % period === offset);
    if (want.join() === at.join()) return { period, offset };
  }
  return null;
}

export function exportJamba(m: ModelIR): JsonObject {
  const type = 'jamba';
  requireMixers(type, m, ['mamba1', 'attention']);
  requireFfns(type, m, ['mlp', 'moe']);
  const s = firstMixer(m, 'mamba1');
  const a = firstMixer(m, 'attention');
  const n = m.layers.length;
  const attnAt = indices(m, (l) => l.mixer?.kind === 'attention');
  const attn = periodOf(attnAt, n);
  if (!attn) {
    refuse(
      type,
      `attention at layers ${attnAt.join(', ')}`,
      'jamba places attention at i % attn_layer_period == attn_layer_offset',
    );
  }
  const moeAt = indices(m, (l) => isMoe(l.ffn));
  const experts = periodOf(moeAt, n);
  if (!experts) {
    refuse(
      type,
      `MoE at layers ${moeAt.join(', ')}`,
      'jamba places MoE at i % expert_layer_period == expert_layer_offset',
    );
  }
  const moe = firstMoe(m);
  const mlp = firstMlp(m) ?? moe?.expert;
  return {
    ...baseKeys(type, 'JambaForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    rms_norm_eps: m.norm.eps,
    hidden_act: mlp ? actName(type, mlp.act, 'the FFN') : 'silu',
    intermediate_size: mlp?.hidden ?? 1,
    ...attentionKeys(a, false),
    attn_layer_period: attn.period,
    attn_layer_offset: attn.offset,
    expert_layer_period: experts.period,
    expert_layer_offset: experts.offset,
    num_experts: moe?.experts ?? 1,
    num_experts_per_tok: moe?.topK ?? 1,
    ...(s
      ? {
          mamba_expand: expandOf(type, s.dInner, m.dim),
          mamba_d_state: s.dState,
          mamba_d_conv: s.dConv,
          mamba_dt_rank: s.dtRank,
          mamba_conv_bias: s.convBias,
          mamba_proj_bias: s.projBias,
        }
      : {}),
  };
}

export function exportBamba(m: ModelIR): JsonObject {
  const type = 'bamba';
  requireMixers(type, m, ['mamba2', 'attention']);
  requireFfns(type, m, ['mlp']);
  const a = firstMixer(m, 'attention');
  const s = firstMixer(m, 'mamba2');
  const rope = a?.rope ? ropeParameters({ ...a.rope, rotaryDim: a.headDim }, a.headDim) : null;
  if (rope) rope.partial_rotary_factor = 0.5;
  const mlp = firstMlp(m);
  return {
    ...baseKeys(type, 'BambaForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    rms_norm_eps: m.norm.eps,
    hidden_act: mlp ? actName(type, mlp.act, 'the FFN') : 'silu',
    intermediate_size: mlp?.hidden ?? 1,
    ...attentionKeys(a, false),
    ...(rope ? { rope_parameters: rope, partial_rotary_factor: 0.5 } : {}),
    attn_layer_indices: indices(m, (l) => l.mixer?.kind === 'attention'),
    ...bambaMambaKeys(type, s, m.dim),
  };
}

const NEMOTRON_BLOCKS: Readonly<Record<string, string>> = {
  'mamba2/none': 'linear_attention',
  'attention/none': 'full_attention',
  'none/mlp': 'mlp',
  'none/moe': 'moe',
};

export function exportNemotronH(m: ModelIR): JsonObject {
  const type = 'nemotron_h';
  const blocks = m.layers.map((l) => {
    const key = `${mixerKind(l)}/${l.ffn?.kind ?? 'none'}`;
    const block = NEMOTRON_BLOCKS[key];
    if (!block) {
      refuse(
        type,
        `the ${mixerKind(l)} mixer and ${l.ffn ? `the ${l.ffn.kind} FFN` : 'no FFN'} in one layer`,
        'nemotron_h layers are one block each: mamba2, attention, MLP or MoE',
        l.index,
      );
    }
    return block;
  });
  const a = firstMixer(m, 'attention');
  const s = firstMixer(m, 'mamba2');
  const mlp = firstMlp(m);
  const moe = firstMoe(m);
  const act = mlp?.act ?? moe?.expert.act;
  return {
    ...baseKeys(type, 'NemotronHForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    layer_norm_epsilon: m.norm.eps,
    layers_block_type: blocks,
    ...attentionKeys(a, true),
    ...(s
      ? {
          mamba_num_heads: s.heads,
          mamba_head_dim: s.headDim,
          ssm_state_size: s.dState,
          n_groups: s.groups,
          conv_kernel: s.dConv,
          chunk_size: s.chunk,
          use_conv_bias: s.convBias,
          use_bias: s.projBias,
          mamba_hidden_act: 'silu',
          ...dtLimit(s),
        }
      : {}),
    ...(act ? { mlp_hidden_act: actName(type, act, 'the FFN') } : {}),
    mlp_bias: mlp?.bias ?? moe?.expert.bias ?? false,
    ...(mlp ? { intermediate_size: mlp.hidden } : {}),
    ...(moe
      ? {
          n_routed_experts: moe.experts,
          num_experts_per_tok: moe.topK,
          n_group: moe.router.groups,
          topk_group: moe.router.topkGroups,
          norm_topk_prob: moe.router.normalize,
          routed_scaling_factor: moe.router.scale,
          moe_intermediate_size: moe.expert.hidden,
          moe_shared_expert_intermediate_size: moe.shared?.hidden ?? 1,
        }
      : {}),
    num_nextn_predict_layers: 0,
  };
}

export function exportGraniteMoeHybrid(m: ModelIR): JsonObject {
  const type = 'granitemoehybrid';
  requireMixers(type, m, ['mamba2', 'attention']);
  requireFfns(type, m, ['mlp', 'moe']);
  const a = firstMixer(m, 'attention');
  const s = firstMixer(m, 'mamba2');
  const ffn = m.layers[0]?.ffn;
  const moe = isMoe(ffn) ? ffn : null;
  const shared = moe ? moe.shared : ffn;
  return {
    ...baseKeys(type, 'GraniteMoeHybridForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    rms_norm_eps: m.norm.eps,
    hidden_act: 'silu',
    layer_types: m.layers.map((l) =>
      l.mixer?.kind === 'attention' ? 'full_attention' : 'linear_attention',
    ),
    ...attentionKeys(a, false),
    ...(a
      ? {
          attention_bias: a.qkvBias,
          attention_multiplier: a.scale,
          position_embedding_type: a.rope ? 'rope' : 'nope',
          ...(a.rope ? { rope_parameters: ropeParameters(a.rope, a.headDim) } : {}),
        }
      : {}),
    ...bambaMambaKeys(type, s, m.dim),
    num_local_experts: moe?.experts ?? 0,
    ...(moe ? { num_experts_per_tok: moe.topK, intermediate_size: moe.expert.hidden } : {}),
    shared_intermediate_size: shared?.kind === 'mlp' ? shared.hidden : 1,
    embedding_multiplier: m.embeddingScale,
    residual_multiplier: m.residualScale,
    logits_scaling: invertExactly(m.logitScale, (x) => 1 / x, 1 / m.logitScale),
  };
}

export function exportZamba2(m: ModelIR): JsonObject {
  const type = 'zamba2';
  requireMixers(type, m, ['mamba2']);
  requireFfns(type, m, ['none']);
  const s = firstMixer(m, 'mamba2')!;
  const blocks = m.sharedBlocks ?? [];
  const b = blocks.at(0);
  return {
    ...baseKeys(type, 'Zamba2ForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    rms_norm_eps: m.norm.eps,
    layers_block_type: m.layers.map((l) => (l.shared ? 'hybrid' : 'linear_attention')),
    num_mem_blocks: Math.max(1, blocks.length),
    ...(b
      ? {
          num_attention_heads: b.attention.heads,
          num_key_value_heads: b.attention.kvHeads,
          use_mem_rope: b.attention.rope !== null,
          ...(b.attention.rope
            ? { rope_parameters: ropeParameters(b.attention.rope, b.attention.headDim) }
            : {}),
          intermediate_size: b.ffn.hidden,
          hidden_act: actName(type, b.ffn.act, 'the shared block FFN'),
          adapter_rank: b.adapterRank,
          use_shared_attention_adapter: b.attentionAdapters,
          use_shared_mlp_adapter: true,
        }
      : {}),
    use_long_context: false,
    add_bias_linear: s.projBias,
    n_mamba_heads: s.heads,
    mamba_headdim: s.headDim,
    mamba_d_state: s.dState,
    mamba_ngroups: s.groups,
    mamba_d_conv: s.dConv,
    mamba_expand: expandOf(type, s.heads * s.headDim, m.dim),
    chunk_size: s.chunk,
    use_conv_bias: s.convBias,
    time_step_min: s.dtMin,
  };
}

export function exportFalconH1(m: ModelIR): JsonObject {
  const type = 'falcon_h1';
  requireMixers(type, m, ['parallel']);
  requireFfns(type, m, ['mlp']);
  const p = firstMixer(m, 'parallel') as ParallelSpec;
  const { attn: a, ssm: s } = p;
  const mlp = firstMlp(m)!;
  const unit = a.headDim ** -0.5;
  return {
    ...baseKeys(type, 'FalconH1ForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    rms_norm_eps: m.norm.eps,
    hidden_act: 'silu',
    intermediate_size: mlp.hidden,
    mlp_bias: mlp.bias,
    mlp_multipliers: [mlp.gateScale ?? 1, mlp.downScale ?? 1],
    ...attentionKeys(a, true),
    attention_bias: a.qkvBias,
    ...(a.rope ? { rope_parameters: ropeParameters(a.rope, a.headDim) } : {}),
    key_multiplier: invertExactly(a.scale, (x) => unit * x, a.scale / unit),
    attention_in_multiplier: p.attnInScale,
    attention_out_multiplier: p.attnOutScale,
    ssm_in_multiplier: p.ssmInScale,
    ssm_out_multiplier: p.ssmOutScale,
    mamba_d_ssm: s.heads * s.headDim,
    mamba_n_heads: s.heads,
    mamba_d_head: s.headDim,
    mamba_d_state: s.dState,
    mamba_n_groups: s.groups,
    mamba_d_conv: s.dConv,
    mamba_chunk_size: s.chunk,
    mamba_conv_bias: s.convBias,
    mamba_proj_bias: s.projBias,
    projectors_bias: s.projBias,
    mamba_rms_norm: s.gateNorm !== false,
    mamba_norm_before_gate: s.normBeforeGate === true,
    ...(s.projScales ? { ssm_multipliers: [...s.projScales] } : {}),
    ...dtLimit(s),
    embedding_multiplier: m.embeddingScale,
    lm_head_multiplier: m.logitScale,
  };
}

export function exportLfm2(m: ModelIR): JsonObject {
  const type = 'lfm2';
  requireMixers(type, m, ['shortconv', 'attention']);
  requireFfns(type, m, ['mlp']);
  const a = firstMixer(m, 'attention');
  const c = firstMixer(m, 'shortconv') as ShortConvSpec | null;
  const mlp = firstMlp(m)!;
  return {
    ...baseKeys(type, 'Lfm2ForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    norm_eps: m.norm.eps,
    ...attentionKeys(a, false),
    ...(a?.rope ? { rope_parameters: ropeParameters(a.rope, a.headDim) } : {}),
    intermediate_size: mlp.hidden,
    block_auto_adjust_ff_dim: false,
    layer_types: m.layers.map((l) => (l.mixer?.kind === 'shortconv' ? 'conv' : 'full_attention')),
    ...(c ? { conv_L_cache: c.lCache, conv_bias: c.bias } : {}),
  };
}

export function exportQwen3Next(m: ModelIR): JsonObject {
  const type = 'qwen3_next';
  requireMixers(type, m, ['gated_deltanet', 'attention']);
  requireFfns(type, m, ['mlp', 'moe']);
  const a = firstMixer(m, 'attention');
  const d = firstMixer(m, 'gated_deltanet') as GatedDeltaNetSpec | null;
  const moe = firstMoe(m);
  const mlp = firstMlp(m) ?? moe?.expert;
  const rope = a?.rope ? ropeParameters(a.rope, a.headDim, 'always') : null;
  return {
    ...baseKeys(type, 'Qwen3NextForCausalLM', m, false),
    max_position_embeddings: m.maxContext,
    rms_norm_eps: m.norm.eps,
    hidden_act: mlp ? actName(type, mlp.act, 'the FFN') : 'silu',
    intermediate_size: firstMlp(m)?.hidden ?? moe?.shared?.hidden ?? moe?.expert.hidden ?? 1,
    ...attentionKeys(a, true),
    ...(a ? { attention_bias: a.qkvBias } : {}),
    ...(rope ? { rope_parameters: rope, partial_rotary_factor: rope.partial_rotary_factor } : {}),
    layer_types: m.layers.map((l) =>
      l.mixer?.kind === 'attention' ? 'full_attention' : 'linear_attention',
    ),
    ...(d
      ? {
          linear_num_key_heads: d.keyHeads,
          linear_num_value_heads: d.valueHeads,
          linear_key_head_dim: d.keyHeadDim,
          linear_value_head_dim: d.valueHeadDim,
          linear_conv_kernel_dim: d.dConv,
        }
      : {}),
    ...qwenMoeKeys(m, 'num_experts'),
    shared_expert_intermediate_size: moe?.shared?.hidden ?? 0,
  };
}
