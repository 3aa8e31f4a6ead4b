/**
 * config.json writers of the attention-only HF types: the inverses of hf-decoder.ts's types
 * (llama, mistral, qwen3, mixtral, qwen3_moe) and of hf-gemma3.ts, hf-gpt-oss.ts and
 * hf-deepseek.ts. Each writes one setting for all layers, from the first layer that has it;
 * hf-config.ts imports the result back and refuses any layer the config then gets wrong.
 */
import type { AttentionSpec, MlaSpec, ModelIR } from '../spec/model.ts';
import {
  actName,
  baseKeys,
  firstMixer,
  firstMlp,
  firstMoe,
  indices,
  invertExactly,
  isMoe,
  mlpHidden,
  refuse,
  requireFfns,
  requireMixers,
  ropeParameters,
  type JsonObject,
} from './hf-common.ts';

function attentionKeys(a: AttentionSpec): JsonObject {
  return {
    num_attention_heads: a.heads,
    num_key_value_heads: a.kvHeads,
    head_dim: a.headDim,
  };
}

/** The one attention all layers of an attention-only type share (the first layer's). */
function theAttention(type: string, m: ModelIR): AttentionSpec {
  requireMixers(type, m, ['attention']);
  const a = firstMixer(m, 'attention');
  if (!a) return refuse(type, 'a model without layers', 'it needs at least one');
  if (a.rope === null) refuse(type, 'attention without RoPE', `${type} always rotates`, 0);
  return a;
}

/** The sliding window the windowed layers share (null: none is windowed). */
function theWindow(m: ModelIR): number | null {
  for (const l of m.layers)
    if (l.mixer?.kind === 'attention' && l.mixer.window !== null) return l.mixer.window;
  return null;
}

function decoder(type: string, arch: string, m: ModelIR, dense: number): JsonObject {
  const a = theAttention(type, m);
  const mlp = firstMlp(m) ?? firstMoe(m)?.expert;
  return {
    ...baseKeys(type, arch, m, true),
    intermediate_size: dense,
    ...attentionKeys(a),
    hidden_act: mlp ? actName(type, mlp.act, 'the FFN') : 'silu',
    rms_norm_eps: m.norm.eps,
    rope_parameters: ropeParameters(a.rope!, a.headDim),
  };
}

export function exportLlama(m: ModelIR): JsonObject {
  requireFfns('llama', m, ['mlp']);
  const a = theAttention('llama', m);
  return {
    ...decoder('llama', 'LlamaForCausalLM', m, mlpHidden(m, 1)),
    attention_bias: a.qkvBias,
    mlp_bias: firstMlp(m)?.bias ?? false,
  };
}

export function exportMistral(m: ModelIR): JsonObject {
  requireFfns('mistral', m, ['mlp']);
  return {
    ...decoder('mistral', 'MistralForCausalLM', m, mlpHidden(m, 1)),
    sliding_window: theWindow(m),
  };
}

export function exportQwen3(m: ModelIR): JsonObject {
  requireFfns('qwen3', m, ['mlp']);
  const a = theAttention('qwen3', m);
  const window = theWindow(m);
  return {
    ...decoder('qwen3', 'Qwen3ForCausalLM', m, mlpHidden(m, 1)),
    attention_bias: a.qkvBias,
    use_sliding_window: window !== null,
    sliding_window: window,
    layer_types: m.layers.map((l) =>
      l.mixer?.kind === 'attention' && l.mixer.window !== null
        ? 'sliding_attention'
        : 'full_attention',
    ),
  };
}

export function exportMixtral(m: ModelIR): JsonObject {
  requireFfns('mixtral', m, ['moe']);
  const moe = firstMoe(m)!;
  return {
    ...decoder('mixtral', 'MixtralForCausalLM', m, moe.expert.hidden),
    sliding_window: theWindow(m),
    num_local_experts: moe.experts,
    num_experts_per_tok: moe.topK,
  };
}

export function exportQwen3Moe(m: ModelIR): JsonObject {
  requireFfns('qwen3_moe', m, ['mlp', 'moe']);
  const a = theAttention('qwen3_moe', m);
  const moe = firstMoe(m);
  const window = theWindow(m);
  return {
    ...decoder('qwen3_moe', 'Qwen3MoeForCausalLM', m, mlpHidden(m, moe?.expert.hidden ?? 1)),
    attention_bias: a.qkvBias,
    use_sliding_window: window !== null,
    sliding_window: window,
    ...qwenMoeKeys(m, 'num_local_experts'),
  };
}

/** Qwen's MoE layer rule written as mlp_only_layers with decoder_sparse_step 1. */
export function qwenMoeKeys(m: ModelIR, expertsKey: string): JsonObject {
  const moe = firstMoe(m);
  if (!moe) return { [expertsKey]: 0, decoder_sparse_step: 1, mlp_only_layers: [] };
  return {
    [expertsKey]: moe.experts,
    num_experts_per_tok: moe.topK,
    moe_intermediate_size: moe.expert.hidden,
    norm_topk_prob: moe.router.normalize,
    decoder_sparse_step: 1,
    mlp_only_layers: indices(m, (l) => !isMoe(l.ffn)),
  };
}

export function exportGemma3Text(m: ModelIR): JsonObject {
  requireFfns('gemma3_text', m, ['mlp']);
  const a = theAttention('gemma3_text', m);
  const ropeOf = (sliding: boolean) =>
    m.layers.find((l) => l.mixer?.kind === 'attention' && (l.mixer.window !== null) === sliding)
      ?.mixer as AttentionSpec | undefined;
  const full = ropeOf(false) ?? a;
  const local = ropeOf(true) ?? a;
  const scalar = invertExactly(a.scale, (x) => x ** -0.5, a.scale ** -2);
  const mlp = firstMlp(m);
  const config: JsonObject = {
    ...baseKeys('gemma3_text', 'Gemma3ForCausalLM', m, true),
    intermediate_size: mlp?.hidden ?? 1,
    ...attentionKeys(a),
    hidden_activation: mlp ? actName('gemma3_text', mlp.act, 'the FFN') : 'gelu_pytorch_tanh',
    rms_norm_eps: m.norm.eps,
    attention_bias: a.qkvBias,
    query_pre_attn_scalar: scalar,
    sliding_window: theWindow(m),
    layer_types: m.layers.map((l) =>
      l.mixer?.kind === 'attention' && l.mixer.window !== null
        ? 'sliding_attention'
        : 'full_attention',
    ),
    rope_parameters: {
      full_attention: ropeParameters(full.rope!, a.headDim),
      sliding_attention: ropeParameters(local.rope!, a.headDim),
    },
    attn_logit_softcapping: a.softcap,
    final_logit_softcapping: m.logitSoftcap,
    use_bidirectional_attention: false,
  };
  return config;
}

/** transformers' GptOssExperts hard-codes alpha (it has no config key). */
const GPT_OSS_ALPHA = 1.702;

export function exportGptOss(m: ModelIR): JsonObject {
  requireFfns('gpt_oss', m, ['moe']);
  const a = theAttention('gpt_oss', m);
  const moe = firstMoe(m)!;
  if (moe.clamp && moe.clamp.alpha !== GPT_OSS_ALPHA) {
    refuse(
      'gpt_oss',
      `swiglu alpha ${moe.clamp.alpha}`,
      `transformers fixes it at ${GPT_OSS_ALPHA}`,
    );
  }
  const window = theWindow(m);
  return {
    ...decoder('gpt_oss', 'GptOssForCausalLM', m, moe.expert.hidden),
    attention_bias: a.qkvBias,
    layer_types: m.layers.map((l) =>
      l.mixer?.kind === 'attention' && l.mixer.window !== null
        ? 'sliding_attention'
        : 'full_attention',
    ),
    ...(window !== null ? { sliding_window: window } : {}),
    num_local_experts: moe.experts,
    num_experts_per_tok: moe.topK,
    swiglu_limit: moe.clamp?.limit ?? 7,
  };
}

/** transformers' yarn_get_mscale. */
function yarnMscale(factor: number, mscale: number): number {
  return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
}

export function exportDeepseekV3(m: ModelIR): JsonObject {
  return deepseekConfig(m, 'deepseek_v3');
}

/**
 * DeepSeek-V3.2: V3's keys plus the indexer's, one layer type per layer (all DSA), and no
 * rope_interleave (its MLA always interleaves). Mixed dense and sparse attention layers, or
 * indexers that differ between layers, have no deepseek_v32 config.
 */
export function exportDeepseekV32(m: ModelIR): JsonObject {
  return deepseekConfig(m, 'deepseek_v32');
}

function deepseekConfig(m: ModelIR, type: 'deepseek_v3' | 'deepseek_v32'): JsonObject {
  requireMixers(type, m, ['mla']);
  requireFfns(type, m, ['mlp', 'moe']);
  const a = firstMixer(m, 'mla') as MlaSpec;
  const moe = firstMoe(m);
  const firstSparse = m.layers.findIndex((l) => isMoe(l.ffn));
  const dense = firstSparse === -1 ? m.layers.length : firstSparse;
  const stray = m.layers.find((l) => l.index > dense && !isMoe(l.ffn));
  if (stray) {
    refuse(
      type,
      'a dense FFN after a MoE one',
      'deepseek_v3 has dense FFNs in its first layers only',
      stray.index,
    );
  }
  const rope = ropeParameters(a.rope, a.ropeDim);
  const base_ = (a.nopeDim + a.ropeDim) ** -0.5;
  if (a.rope.scaling.kind === 'yarn' && a.scale !== base_) {
    // scale = base · mscale(factor, mscale_all_dim)²: solve for mscale_all_dim.
    const f = a.rope.scaling.factor;
    const all = (Math.sqrt(a.scale / base_) - 1) / (0.1 * Math.log(f));
    rope.mscale_all_dim = invertExactly(a.scale, (x) => base_ * yarnMscale(f, x) ** 2, all);
    rope.attention_factor = a.rope.scaling.attentionFactor;
  }
  const shared = moe?.shared;
  const v32 = type === 'deepseek_v32';
  const index = a.index;
  if (v32) {
    if (index === null) refuse(type, 'dense MLA', 'every deepseek_v32 layer has an indexer');
    if (a.ropePairs !== 'interleaved') {
      refuse(type, 'rope_pairs half', "deepseek_v32's MLA always rotates interleaved pairs");
    }
  } else if (index !== null) {
    refuse(
      type,
      'an indexer (sparse attention)',
      'deepseek_v3 attention is dense; deepseek_v32 has one',
    );
  }
  return {
    ...baseKeys(type, v32 ? 'DeepseekV32ForCausalLM' : 'DeepseekV3ForCausalLM', m, true),
    rms_norm_eps: m.norm.eps,
    hidden_act: actName(type, (firstMlp(m) ?? moe?.expert)?.act ?? 'silu', 'the FFN'),
    num_attention_heads: a.heads,
    num_key_value_heads: a.heads,
    q_lora_rank: a.qRank,
    kv_lora_rank: a.kvRank,
    qk_nope_head_dim: a.nopeDim,
    qk_rope_head_dim: a.ropeDim,
    qk_head_dim: a.nopeDim + a.ropeDim,
    head_dim: a.ropeDim,
    v_head_dim: a.vHeadDim,
    rope_parameters: rope,
    ...(v32 ? {} : { rope_interleave: a.ropePairs === 'interleaved' }),
    ...(v32 && index
      ? {
          index_n_heads: index.heads,
          index_head_dim: index.dim,
          index_topk: index.topk,
          layer_types: m.layers.map(() => 'indexed_attention'),
        }
      : {}),
    attention_bias: a.bias,
    intermediate_size: mlpHidden(m, moe?.expert.hidden ?? 1),
    first_k_dense_replace: dense,
    ...(moe
      ? {
          n_routed_experts: moe.experts,
          num_experts_per_tok: moe.topK,
          n_group: moe.router.groups,
          topk_group: moe.router.topkGroups,
          routed_scaling_factor: moe.router.scale,
          norm_topk_prob: moe.router.normalize,
          moe_intermediate_size: moe.expert.hidden,
          n_shared_experts: shared ? shared.hidden / moe.expert.hidden : 1,
        }
      : {}),
  };
}
