/**
 * DeepSeek-V3 (HF `deepseek_v3`, transformers' DeepseekV3Config / modeling_deepseek_v3.py):
 * MLA attention in every layer; a dense SwiGLU MLP in layers < first_k_dense_replace and MoE in
 * every layer from there on. transformers ignores moe_layer_freq (every later layer is sparse
 * whatever it says), and so does strata. The router scores experts with a sigmoid, ranks them
 * with e_score_correction_bias added (selection only), keeps the topk_group best of n_group
 * groups (a group scores the sum of its two best), renormalises the top-k weights
 * (norm_topk_prob) and scales them by routed_scaling_factor; n_shared_experts shared experts
 * form one MLP of moe_intermediate_size × n_shared_experts.
 *
 * The multi-token-prediction layers (num_nextn_predict_layers; layer 61 of the released
 * checkpoint) are not part of transformers' model, which skips their tensors on load; strata
 * neither loads nor counts them.
 * Defaults for absent keys are DeepseekV3Config's.
 *
 * DeepSeek-V3.2 (HF `deepseek_v32`, DeepseekV32Config / modeling_deepseek_v32.py) is DeepSeek-V3
 * plus DeepSeek sparse attention: every layer's MLA attends only to the index_topk positions its
 * lightning indexer (index_n_heads heads of index_head_dim) picks, `mla(index: indexer(...))`
 * (src/ops/indexer.ts). Otherwise it differs from deepseek_v3 in what transformers reads: the q
 * LoRA is required (the indexer reads the q latent), MLA's rope is always interleaved
 * (rope_interleave is not a key of its config), and the dense/MoE layers come from
 * mlp_layer_types when given (else first_k_dense_replace, as V3). Defaults: DeepseekV32Config's.
 */
import { type LayerSpec, type MlaSpec, type MlpSpec, type MoeSpec } from '../spec/model.ts';
import { isConfigObject, show, type ConfigReader } from './config-reader.ts';
import { readActivation } from './hf-decoder.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { moeSpec } from './hf-moe.ts';
import { readRope } from './hf-rope.ts';
import { expectedTensors } from './names.ts';
import type { FamilyImport, FamilyImporter } from './registry.ts';
import { MLA_LATENT_EPS } from '../mixers/mla.ts';
import type { IndexerSpec } from '../spec/kinds/indexer.ts';

/** transformers' yarn_get_mscale. */
function yarnMscale(factor: number, mscale: number): number {
  return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
}

/**
 * DeepseekV3Attention's softmax scale: qk_head_dim^-0.5, times mscale² where the rope is scaled
 * (yarn) and its dict has a non-zero mscale_all_dim.
 */
function mlaScale(cfg: ConfigReader, qkHeadDim: number, factor: number | null): number {
  const base = qkHeadDim ** -0.5;
  if (factor === null) return base;
  const dict = [cfg.raw('rope_scaling'), cfg.raw('rope_parameters')].find(isConfigObject);
  const all = dict?.mscale_all_dim;
  if (all === undefined || all === null || all === 0) return base;
  if (typeof all !== 'number')
    cfg.fail('rope_scaling.mscale_all_dim', `must be a number, got ${show(all)}`);
  const m = yarnMscale(factor, all);
  return base * m * m;
}

/** A key DeepseekV3Config has but transformers' model never reads: only its one value is safe. */
function requireValue(cfg: ConfigReader, key: string, value: string, why: string): void {
  const raw = cfg.raw(key);
  cfg.ignore(key);
  if (raw !== undefined && raw !== null && raw !== value) {
    cfg.fail(key, `is ${show(raw)}; strata (like transformers) implements ${value} only: ${why}`);
  }
}

/** What deepseek_v32 reads differently (see the header). */
interface Variant {
  family: 'deepseek_v3' | 'deepseek_v32';
  /** DeepseekV32Config's indexer keys; null: dense attention (V3). */
  index: (cfg: ConfigReader) => IndexerSpec | null;
}

function readIndexer(cfg: ConfigReader): IndexerSpec {
  const spec: IndexerSpec = {
    kind: 'indexer',
    heads: cfg.positiveInt('index_n_heads', 64),
    dim: cfg.positiveInt('index_head_dim', 128),
    topk: cfg.positiveInt('index_topk', 2048),
  };
  return spec;
}

const V3: Variant = { family: 'deepseek_v3', index: () => null };
const V32: Variant = { family: 'deepseek_v32', index: readIndexer };

function readMla(cfg: ConfigReader, maxContext: number, variant: Variant = V3): MlaSpec {
  const heads = cfg.positiveInt('num_attention_heads', 128);
  const kvHeads = cfg.raw('num_key_value_heads');
  cfg.ignore('num_key_value_heads');
  if (kvHeads !== undefined && kvHeads !== null && kvHeads !== heads) {
    cfg.fail(
      'num_key_value_heads',
      `is ${show(kvHeads)} but MLA gives every one of the ${heads} heads its own key and value`,
    );
  }
  const qRankRaw = cfg.raw('q_lora_rank');
  if (variant.family === 'deepseek_v32' && qRankRaw === null) {
    cfg.fail('q_lora_rank', `is null, but DeepSeek-V3.2's indexer reads the q latent (q_a_proj)`);
  }
  const qRank = qRankRaw === null ? null : cfg.positiveInt('q_lora_rank', 1536);
  if (qRankRaw === null) cfg.ignore('q_lora_rank');
  const kvRank = cfg.positiveInt('kv_lora_rank', 512);
  const nopeDim = cfg.positiveInt('qk_nope_head_dim', 128);
  const ropeDim = cfg.positiveInt('qk_rope_head_dim', 64);
  const vHeadDim = cfg.positiveInt('v_head_dim', 128);
  // transformers 5 writes the derived sizes out: qk_head_dim, and head_dim (the rope's width).
  if (cfg.has('qk_head_dim') && cfg.positiveInt('qk_head_dim') !== nopeDim + ropeDim) {
    cfg.fail('qk_head_dim', `must be qk_nope_head_dim + qk_rope_head_dim (${nopeDim + ropeDim})`);
  }
  if (cfg.has('head_dim') && cfg.positiveInt('head_dim') !== ropeDim) {
    cfg.fail('head_dim', `must equal qk_rope_head_dim (${ropeDim}), the rotated width`);
  }
  const rope = readRope(cfg, {
    headDim: ropeDim,
    maxPositions: maxContext,
    defaultTheta: 10000,
    family: 'deepseek_v3',
  });
  if (rope.rotaryDim !== ropeDim) {
    cfg.fail('partial_rotary_factor', `must be 1: MLA rotates all ${ropeDim} rope dims`);
  }
  const factor = rope.scaling.kind === 'yarn' ? rope.scaling.factor : null;
  if (rope.scaling.kind !== 'none' && rope.scaling.kind !== 'yarn') {
    cfg.fail(
      'rope_scaling',
      `type '${rope.scaling.kind}' is not one DeepSeek-V3 uses (default, yarn)`,
    );
  }
  return {
    kind: 'mla',
    heads,
    qRank,
    kvRank,
    nopeDim,
    ropeDim,
    vHeadDim,
    rope,
    ropePairs: readPairs(cfg, variant),
    bias: cfg.bool('attention_bias', false),
    latentEps: MLA_LATENT_EPS,
    scale: mlaScale(cfg, nopeDim + ropeDim, factor),
    // The compressed cache with absorbed projections (src/mixers/mla.ts).
    cache: 'latent',
    index: readIndex(cfg, variant, ropeDim),
  };
}

/** V3 reads rope_interleave; V3.2's attention always interleaves and its config has no such key. */
function readPairs(cfg: ConfigReader, variant: Variant): MlaSpec['ropePairs'] {
  if (variant.family === 'deepseek_v3') {
    return cfg.bool('rope_interleave', true) ? 'interleaved' : 'half';
  }
  cfg.ignore('rope_interleave');
  return 'interleaved';
}

function readIndex(cfg: ConfigReader, variant: Variant, ropeDim: number): IndexerSpec | null {
  const index = variant.index(cfg);
  if (index === null) return null;
  if (index.dim < ropeDim) {
    cfg.fail(
      'index_head_dim',
      `(${index.dim}) must be at least qk_rope_head_dim (${ropeDim}): the indexer rotates its first qk_rope_head_dim dims`,
    );
  }
  // transformers writes one layer type per layer; every layer is DSA.
  const types = cfg.optStringList('layer_types');
  if (types !== null && types.some((t) => t !== 'indexed_attention')) {
    cfg.fail(
      'layer_types',
      `must all be 'indexed_attention' (every DeepSeek-V3.2 layer is sparse), got ${show(types)}`,
    );
  }
  return index;
}

function readMoe(cfg: ConfigReader, act: MlpSpec['act']): MoeSpec {
  const experts = cfg.positiveInt('n_routed_experts', 256);
  const topK = cfg.positiveInt('num_experts_per_tok', 8);
  if (topK > experts)
    cfg.fail('num_experts_per_tok', `(${topK}) exceeds n_routed_experts (${experts})`);
  const groups = cfg.positiveInt('n_group', 8);
  const topkGroups = cfg.positiveInt('topk_group', 4);
  if (experts % groups !== 0)
    cfg.fail('n_group', `(${groups}) must divide n_routed_experts (${experts})`);
  if (topkGroups > groups) cfg.fail('topk_group', `(${topkGroups}) exceeds n_group (${groups})`);
  const scale = cfg.num('routed_scaling_factor', 2.5);
  if (!(scale > 0)) cfg.fail('routed_scaling_factor', `must be positive, got ${scale}`);
  const hidden = cfg.positiveInt('moe_intermediate_size', 2048);
  const shared = cfg.positiveInt('n_shared_experts', 1);
  const expert: MlpSpec = { kind: 'mlp', hidden, act, gated: true, bias: false };
  return moeSpec(
    experts,
    topK,
    expert,
    {
      scoring: 'sigmoid',
      normalize: cfg.bool('norm_topk_prob', true),
      scale,
      bias: false,
      correctionBias: true,
      groups,
      topkGroups,
    },
    { shared: { ...expert, hidden: hidden * shared } },
  );
}

/** Checkpoint names: the shared experts are `shared_experts` (plural); the rest are canonical. */
function deepseekWeightName(canonical: string): string {
  return canonical.replace(/\.mlp\.shared_expert\./, '.mlp.shared_experts.');
}

/** Which layers are MoE: mlp_layer_types when given (V3.2), else from first_k_dense_replace. */
function sparseLayers(cfg: ConfigReader, nLayers: number, variant: Variant): boolean[] {
  const types = variant.family === 'deepseek_v32' ? cfg.optStringList('mlp_layer_types') : null;
  if (types !== null) {
    cfg.ignore('first_k_dense_replace');
    if (types.length !== nLayers || types.some((t) => t !== 'dense' && t !== 'sparse')) {
      cfg.fail(
        'mlp_layer_types',
        `must list 'dense' or 'sparse' for each of the ${nLayers} layers, got ${show(types)}`,
      );
    }
    return types.map((t) => t === 'sparse');
  }
  const firstSparse = cfg.int('first_k_dense_replace', 3);
  if (firstSparse < 0) cfg.fail('first_k_dense_replace', `must be at least 0, got ${firstSparse}`);
  return Array.from({ length: nLayers }, (_, i) => i >= firstSparse);
}

export const importDeepseekV3: FamilyImporter = (cfg, name) => importDeepseek(cfg, name, V3);
export const importDeepseekV32: FamilyImporter = (cfg, name) => importDeepseek(cfg, name, V32);

function importDeepseek(cfg: ConfigReader, name: string, variant: Variant): FamilyImport {
  const vocab = cfg.positiveInt('vocab_size', 129280);
  const dim = cfg.positiveInt('hidden_size', 7168);
  const nLayers = cfg.positiveInt('num_hidden_layers', 61);
  const maxContext = cfg.positiveInt('max_position_embeddings', 4096);
  const eps = cfg.num('rms_norm_eps', 1e-6);
  if (!(eps > 0)) cfg.fail('rms_norm_eps', `must be positive, got ${eps}`);
  const act = readActivation(cfg, 'hidden_act', 'silu');
  const mixer = readMla(cfg, maxContext, variant);
  const dense: MlpSpec = {
    kind: 'mlp',
    hidden: cfg.positiveInt('intermediate_size', 18432),
    act,
    gated: true,
    bias: false,
  };
  const moe = readMoe(cfg, act);
  const sparseAt = sparseLayers(cfg, nLayers, variant);
  // V3.2's config has an MLP bias flag; its MLPs have no biases in released models.
  if (variant.family === 'deepseek_v32' && cfg.bool('mlp_bias', false)) {
    cfg.fail('mlp_bias', 'is true; strata implements DeepSeek-V3.2 MLPs without biases');
  }
  // Read by transformers' config only: the model makes every layer from first_k_dense_replace on
  // sparse whatever moe_layer_freq says.
  cfg.ignore('moe_layer_freq');
  // The routing of noaux_tc with sigmoid scores is what transformers implements, whatever these say.
  requireValue(cfg, 'scoring_func', 'sigmoid', 'sigmoid expert scores');
  requireValue(
    cfg,
    'topk_method',
    'noaux_tc',
    'selection by score plus correction bias within groups',
  );
  // Training-only auxiliary losses, expert-parallel size, remote-code map, MTP layers (see above).
  cfg.ignore('aux_loss_alpha', 'seq_aux', 'ep_size', 'auto_map', 'num_nextn_predict_layers');

  const layers: LayerSpec[] = Array.from({ length: nLayers }, (_, index) => {
    const sparse = sparseAt[index];
    return {
      index,
      mixerName: 'mla',
      mixer: structuredClone(mixer),
      ffnName: sparse ? 'moe' : 'mlp',
      ffn: sparse ? structuredClone(moe) : { ...dense },
    };
  });
  const model = modelIR(name, layers, rmsNorm(eps), {
    vocab,
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext,
  });
  const weightMap = Object.fromEntries(
    expectedTensors(model).map((t) => [t.name, deepseekWeightName(t.name)]),
  );
  return { model, weightMap, storedShapes: {} };
}
