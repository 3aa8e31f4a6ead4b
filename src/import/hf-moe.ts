/**
 * The MoE parts of HuggingFace configs and checkpoints: which layers are sparse, their experts,
 * top-k and router. Used by the decoder types (hf-mixtral.ts, hf-qwen3-moe.ts), qwen3_next,
 * jamba, granitemoehybrid, gpt_oss and deepseek_v3.
 * Defaults for absent keys are those of the transformers config classes.
 */
import type { FfnSpec, MlpSpec, MoeRouterSpec, MoeSpec } from '../spec/model.ts';
import { DEFAULT_ROUTER } from '../spec/kinds/moe.ts';
import { show, type ConfigReader } from './config-reader.ts';

/** One layer's FFN as an importer builds it: its name in tables and its spec. */
export interface LayerFfn {
  name: string;
  spec: FfnSpec;
}

/** Softmax over all experts, optionally renormalised over the selected k. */
export function softmaxRouter(normalize: boolean): MoeRouterSpec {
  return { ...DEFAULT_ROUTER, normalize };
}

export function moeSpec(
  experts: number,
  topK: number,
  expert: MlpSpec,
  router: MoeRouterSpec,
  over: Partial<MoeSpec> = {},
): MoeSpec {
  return {
    kind: 'moe',
    experts,
    topK,
    expert,
    clamp: null,
    router,
    shared: null,
    sharedGate: false,
    ...over,
  };
}

/** A list of layer indices (e.g. mlp_only_layers), [] when absent or null. */
export function readLayerList(cfg: ConfigReader, key: string, layers: number): number[] {
  const raw = cfg.raw(key);
  if (raw === undefined || raw === null) return [];
  if (
    !Array.isArray(raw) ||
    !raw.every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < layers)
  ) {
    cfg.fail(key, `must be a list of layer indices in [0, ${layers}), got ${show(raw)}`);
  }
  return raw as number[];
}

/** num_experts_per_tok, at most `experts`. */
export function readTopK(cfg: ConfigReader, experts: number, fallback: number): number {
  const k = cfg.positiveInt('num_experts_per_tok', fallback);
  if (k > experts)
    cfg.fail('num_experts_per_tok', `(${k}) exceeds the number of experts (${experts})`);
  return k;
}

/** The config class's defaults for the MoE keys of the Qwen MoE families. */
export interface QwenMoeDefaults {
  experts: number;
  topK: number;
  hidden: number;
  normalize: boolean;
}

export const QWEN3_MOE_DEFAULTS: QwenMoeDefaults = {
  experts: 128,
  topK: 8,
  hidden: 768,
  normalize: false,
};

/**
 * Qwen3-MoE (and Qwen2-MoE's layer rule): layer i is sparse unless it is in mlp_only_layers or
 * (i + 1) is not a multiple of decoder_sparse_step; sparse experts are moe_intermediate_size
 * wide and dense layers intermediate_size. transformers 5 writes num_experts as
 * num_local_experts.
 */
export function qwen3MoeFfns(
  cfg: ConfigReader,
  layers: number,
  dense: MlpSpec,
  defaults: QwenMoeDefaults = QWEN3_MOE_DEFAULTS,
): LayerFfn[] {
  const key = cfg.has('num_local_experts') ? 'num_local_experts' : 'num_experts';
  cfg.ignore('num_local_experts', 'num_experts');
  const experts = cfg.int(key, defaults.experts);
  if (experts < 0) cfg.fail(key, `must be at least 0, got ${experts}`);
  const step = cfg.positiveInt('decoder_sparse_step', 1);
  const mlpOnly = new Set(readLayerList(cfg, 'mlp_only_layers', layers));
  const hidden = cfg.positiveInt('moe_intermediate_size', defaults.hidden);
  const normalize = cfg.bool('norm_topk_prob', defaults.normalize);
  const topK = experts > 0 ? readTopK(cfg, experts, defaults.topK) : 0;
  if (experts === 0) cfg.ignore('num_experts_per_tok');
  const sparse = moeSpec(experts, topK, { ...dense, hidden }, softmaxRouter(normalize));
  return Array.from({ length: layers }, (_, i) =>
    experts > 0 && !mlpOnly.has(i) && (i + 1) % step === 0
      ? { name: 'moe', spec: structuredClone(sparse) }
      : { name: 'mlp', spec: { ...dense } },
  );
}
