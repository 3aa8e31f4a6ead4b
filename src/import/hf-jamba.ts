/**
 * JambaConfig (HF `jamba`): layer i is attention (no positional encoding) when
 * i % attn_layer_period == attn_layer_offset, else a Mamba-1 mixer with RMSNorms on dt, B and C;
 * every layer then has a SwiGLU FFN, an MoE of num_experts (softmax top-k, not renormalised)
 * when i % expert_layer_period == expert_layer_offset and num_experts > 1, otherwise dense.
 */
import type { LayerSpec, Mamba1Spec, MlpSpec } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { modelIR } from './hf-model.ts';
import { attentionSpec, readKvHeads } from './hf-attention.ts';
import { readActivation } from './hf-decoder.ts';
import { moeSpec, softmaxRouter } from './hf-moe.ts';
import {
  mapWeights,
  rms,
  SSM_INIT_KEYS,
  JAMBA_STYLE_RULES,
  FEED_FORWARD_RULE,
} from './hf-ssm-shared.ts';
import type { FamilyImport } from './registry.ts';

/** A layer period and offset (JambaConfig requires offset < period). */
function readPeriod(
  cfg: ConfigReader,
  periodKey: string,
  offsetKey: string,
  fallback: { period: number; offset: number },
): { period: number; offset: number } {
  const period = cfg.positiveInt(periodKey, fallback.period);
  const offset = cfg.int(offsetKey, fallback.offset);
  if (offset < 0 || offset >= period) {
    cfg.fail(offsetKey, `${offset} must be in [0, ${periodKey} ${period})`);
  }
  return { period, offset };
}

export function importJamba(cfg: ConfigReader, name: string): FamilyImport {
  const dim = cfg.positiveInt('hidden_size', 4096);
  const n = cfg.positiveInt('num_hidden_layers', 32);
  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, 8);
  // JambaAttention derives head_dim from hidden_size; the config class has no head_dim.
  if (dim % heads !== 0) {
    cfg.fail('hidden_size', `${dim} is not a multiple of num_attention_heads ${heads}`);
  }
  const headDim = dim / heads;
  const act = readActivation(cfg, 'hidden_act', 'silu');
  if (act !== 'silu') cfg.fail('hidden_act', 'must be silu (it is also the mamba conv activation)');
  const norm = rms(cfg, 'rms_norm_eps', 1e-6);
  if (cfg.raw('sliding_window') !== undefined && cfg.raw('sliding_window') !== null) {
    cfg.fail('sliding_window', 'is set; not supported');
  }
  cfg.ignore('sliding_window');
  const attn = attentionSpec(heads, kvHeads, headDim, null);

  const expand = cfg.positiveInt('mamba_expand', 2);
  const rankRaw = cfg.raw('mamba_dt_rank');
  const dtRank =
    rankRaw === undefined || rankRaw === null || rankRaw === 'auto'
      ? Math.ceil(dim / 16)
      : cfg.positiveInt('mamba_dt_rank');
  const mamba: Mamba1Spec = {
    kind: 'mamba1',
    dInner: expand * dim,
    dState: cfg.positiveInt('mamba_d_state', 16),
    dConv: cfg.positiveInt('mamba_d_conv', 4),
    dtRank,
    convBias: cfg.bool('mamba_conv_bias', true),
    projBias: cfg.bool('mamba_proj_bias', false),
    // JambaMambaMixer builds its dt/B/C norms with the model's rms_norm_eps.
    innerNorms: { eps: norm.eps },
  };
  // Kernel choice and generation-time logit trimming: the same numbers either way.
  cfg.ignore('use_mamba_kernels', 'num_logits_to_keep', ...SSM_INIT_KEYS);

  const attnAt = readPeriod(cfg, 'attn_layer_period', 'attn_layer_offset', {
    period: 8,
    offset: 4,
  });
  const expertAt = readPeriod(cfg, 'expert_layer_period', 'expert_layer_offset', {
    period: 2,
    offset: 1,
  });
  const dense: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 14336),
    act,
    gated: true,
    bias: false,
  };
  const experts = cfg.positiveInt('num_experts', 16);
  const topK = cfg.positiveInt('num_experts_per_tok', 2);
  if (experts > 1 && topK > experts) {
    cfg.fail('num_experts_per_tok', `${topK} exceeds num_experts ${experts}`);
  }
  // JambaSparseMoeBlock: softmax over all experts, top-k, no renormalisation.
  const moe = moeSpec(experts, topK, dense, softmaxRouter(false));
  const types = Array.from({ length: n }, (_, i) =>
    i % attnAt.period === attnAt.offset ? 'attention' : 'mamba',
  );
  // JambaConfig computes layers_block_type / layers_num_experts; a config that writes them out
  // must agree with the periods (transformers ignores the written copies).
  const writtenTypes = cfg.optStringList('layers_block_type');
  if (writtenTypes && writtenTypes.join() !== types.join()) {
    cfg.fail('layers_block_type', `disagrees with attn_layer_period/offset (${types.join(', ')})`);
  }
  const numExperts = types.map((_, i) => (i % expertAt.period === expertAt.offset ? experts : 1));
  const writtenExperts = cfg.raw('layers_num_experts');
  if (
    writtenExperts !== undefined &&
    writtenExperts !== null &&
    show(writtenExperts) !== show(numExperts)
  ) {
    cfg.fail(
      'layers_num_experts',
      `disagrees with expert_layer_period/offset and num_experts (${show(numExperts)})`,
    );
  }
  cfg.ignore('layers_num_experts');

  const layers = types.map((t, index): LayerSpec => {
    const sparse = numExperts[index] > 1;
    return {
      index,
      mixerName: t,
      mixer: t === 'attention' ? attn : mamba,
      ffnName: sparse ? 'moe' : 'mlp',
      ffn: sparse ? structuredClone(moe) : { ...dense },
    };
  });
  const model = modelIR(name, layers, norm, {
    vocab: cfg.positiveInt('vocab_size', 65536),
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext: cfg.positiveInt('max_position_embeddings', 262144),
  });
  return {
    model,
    ...mapWeights(model, [
      ...JAMBA_STYLE_RULES,
      [/^model\.layers\.(\d+)\.mlp\.gate\./, 'model.layers.$1.feed_forward.router.'],
      FEED_FORWARD_RULE,
    ]),
  };
}
