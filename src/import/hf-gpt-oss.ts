/**
 * HuggingFace `gpt_oss` (OpenAI gpt-oss-20b / -120b): pre-norm decoder whose attention has
 * q/k/v/o biases and a learned sink logit per head, alternates sliding-window and full layers
 * by `layer_types`, uses YaRN RoPE without truncation, and whose every FFN is a sparse MoE:
 * router linear with bias, softmax over the selected k logits (the same weights as a softmax
 * over all experts renormalised over the k), experts with biases and the clamped SwiGLU
 * g·σ(α·g)·(u + 1).
 *
 * The checkpoint fuses each layer's experts: gate_up_proj [E, dim, 2·hidden] with gate and up
 * interleaved on the last axis (gate at even columns), gate_up_proj_bias [E, 2·hidden],
 * down_proj [E, hidden, dim] and down_proj_bias [E, dim], all stored input-major. The importer
 * maps strata's canonical per-expert tensors onto slices of those (src/import/convert.ts: one
 * expert's box, its gate or up columns, transposed) applied when a tensor is read, so
 * compilation only sees canonical [out, in] tensors.
 *
 * Class defaults of GptOssConfig are those of the 120b model (36 layers, 128 experts), not the
 * 20b's; the keys that shape the network are therefore required, never defaulted.
 */
import { type LayerSpec, type MlpSpec, type ModelIR, type MoeSpec } from '../spec/model.ts';
import { show, type ConfigReader } from './config-reader.ts';
import type { StoredSlice } from './convert.ts';
import type { FamilyImport } from './registry.ts';
import { attentionSpec, readHeadDim, readKvHeads } from './hf-attention.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import { moeSpec, softmaxRouter } from './hf-moe.ts';
import { expectedTensors } from './names.ts';

const LAYER_TYPES = new Set(['sliding_attention', 'full_attention']);

/** layer_types, or GptOssConfig's default: sliding on even layers, full on odd ones. */
function readLayerTypes(cfg: ConfigReader, layers: number): string[] {
  const types = cfg.optStringList('layer_types');
  if (!types) {
    return Array.from({ length: layers }, (_, i) =>
      i % 2 === 0 ? 'sliding_attention' : 'full_attention',
    );
  }
  if (types.length !== layers)
    cfg.fail('layer_types', `has ${types.length} entries for ${layers} layers`);
  const bad = types.find((t) => !LAYER_TYPES.has(t));
  if (bad !== undefined)
    cfg.fail('layer_types', `entry ${show(bad)} is not full_attention or sliding_attention`);
  return types;
}

/** num_local_experts, which GptOssConfig's attribute_map also lets configs spell num_experts. */
function readExperts(cfg: ConfigReader): number {
  if (!cfg.has('num_experts')) {
    cfg.ignore('num_experts');
    return cfg.positiveInt('num_local_experts');
  }
  const experts = cfg.positiveInt('num_experts');
  if (cfg.has('num_local_experts') && cfg.int('num_local_experts') !== experts)
    cfg.fail('num_local_experts', `disagrees with num_experts (${experts})`);
  cfg.ignore('num_local_experts');
  return experts;
}

/** num_experts_per_tok; OpenAI's own experts_per_token, when also present, must agree. */
function readTopK(cfg: ConfigReader, experts: number): number {
  const k = cfg.positiveInt('num_experts_per_tok');
  if (k > experts)
    cfg.fail('num_experts_per_tok', `(${k}) exceeds the number of experts (${experts})`);
  if (cfg.has('experts_per_token') && cfg.int('experts_per_token') !== k)
    cfg.fail('experts_per_token', `disagrees with num_experts_per_tok (${k})`);
  cfg.ignore('experts_per_token');
  return k;
}

function readModel(cfg: ConfigReader, name: string): ModelIR {
  const vocab = cfg.positiveInt('vocab_size');
  const dim = cfg.positiveInt('hidden_size');
  const hidden = cfg.positiveInt('intermediate_size');
  const nLayers = cfg.positiveInt('num_hidden_layers');
  const heads = cfg.positiveInt('num_attention_heads');
  const kvHeads = readKvHeads(cfg, heads, 'required');
  const headDim = readHeadDim(cfg, dim, heads, null);
  // The experts' activation is the clamped SwiGLU whatever hidden_act says; accept only silu so
  // that a config meaning something else is not silently run as gpt-oss.
  const act = cfg.str('hidden_act', 'silu');
  if (act !== 'silu')
    cfg.fail('hidden_act', `is '${act}'; gpt_oss experts are a clamped SwiGLU (silu)`);
  const eps = cfg.num('rms_norm_eps', 1e-5);
  if (!(eps > 0)) cfg.fail('rms_norm_eps', `must be positive, got ${eps}`);
  const maxContext = cfg.positiveInt('max_position_embeddings', 131072);
  const bias = cfg.bool('attention_bias', true);
  if (!cfg.has('rope_parameters') && !cfg.has('rope_scaling')) {
    cfg.fail('rope_parameters', 'is required (strata does not assume the class default YaRN)');
  }
  const rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: 150000,
    family: 'gpt_oss',
  });
  // OpenAI's key for YaRN's original context; transformers reads the rope dict's instead.
  const initial = cfg.optInt('initial_context_length');
  if (
    initial !== null &&
    rope.scaling.kind === 'yarn' &&
    initial !== rope.scaling.originalMaxPositions
  ) {
    cfg.fail(
      'initial_context_length',
      `(${initial}) disagrees with the rope's original_max_position_embeddings (${rope.scaling.originalMaxPositions})`,
    );
  }
  const types = readLayerTypes(cfg, nLayers);
  let window: number | null = null;
  if (types.includes('sliding_attention')) window = cfg.positiveInt('sliding_window');
  else cfg.ignore('sliding_window');

  const experts = readExperts(cfg);
  const topK = readTopK(cfg, experts);
  const limit = cfg.num('swiglu_limit', 7);
  if (!(limit > 0)) cfg.fail('swiglu_limit', `must be positive, got ${limit}`);
  const alpha = cfg.num('swiglu_alpha', 1.702);
  const expert: MlpSpec = { kind: 'mlp', hidden, act: 'silu', gated: true, bias: true };
  const moe: MoeSpec = moeSpec(
    experts,
    topK,
    expert,
    { ...softmaxRouter(true), bias: true },
    { clamp: { limit, alpha } },
  );

  const layers: LayerSpec[] = types.map((type, index) => {
    const mixer = attentionSpec(heads, kvHeads, headDim, rope, {
      bias,
      window: type === 'sliding_attention' ? window : null,
      sinks: true,
    });
    return { index, mixerName: type, mixer, ffnName: 'moe', ffn: structuredClone(moe) };
  });
  return modelIR(name, layers, rmsNorm(eps), {
    vocab,
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext,
  });
}

const EXPERT_TENSOR =
  /^(model\.layers\.\d+\.mlp)\.experts\.(\d+)\.(gate|up|down)_proj\.(weight|bias)$/;
const ROUTER_TENSOR = /^(model\.layers\.\d+\.mlp)\.gate\.(weight|bias)$/;

/** Where one canonical expert tensor lives in the fused checkpoint tensors, and how to read it. */
function expertSource(
  model: ModelIR,
  prefix: string,
  e: number,
  proj: 'gate' | 'up' | 'down',
  kind: 'weight' | 'bias',
  f: MoeSpec,
): { name: string; shape: number[]; slice: StoredSlice } {
  const E = f.experts;
  const H = f.expert.hidden;
  const D = model.dim;
  const fused = proj === 'down' ? 'down_proj' : 'gate_up_proj';
  // Gate at even columns of the fused last axis, up at odd ones; down keeps all.
  const columns =
    proj === 'down' ? {} : { columns: { offset: proj === 'gate' ? 0 : 1, stride: 2 } };
  const cols = proj === 'down' ? D : 2 * H;
  if (kind === 'bias') {
    const shape = [E, cols];
    return {
      name: `${prefix}.experts.${fused}_bias`,
      shape,
      slice: { start: [e, 0], size: [1, cols], ...columns },
    };
  }
  const shape = proj === 'down' ? [E, H, D] : [E, D, cols];
  return {
    name: `${prefix}.experts.${fused}`,
    shape,
    slice: { start: [e, 0, 0], size: [1, shape[1], shape[2]], ...columns, transpose: true },
  };
}

export function importGptOss(cfg: ConfigReader, name: string): FamilyImport {
  const model = readModel(cfg, name);
  const weightMap: Record<string, string> = {};
  const storedShapes: Record<string, number[]> = {};
  const storedSlices: Record<string, StoredSlice> = {};
  for (const t of expectedTensors(model)) {
    const ex = EXPERT_TENSOR.exec(t.name);
    const router = ROUTER_TENSOR.exec(t.name);
    if (ex) {
      const layer = model.layers[Number(/layers\.(\d+)/.exec(t.name)![1])];
      const f = layer.ffn as MoeSpec;
      const proj = ex[3] as 'gate' | 'up' | 'down';
      const src = expertSource(model, ex[1], Number(ex[2]), proj, ex[4] as 'weight' | 'bias', f);
      weightMap[t.name] = src.name;
      storedShapes[t.name] = src.shape;
      storedSlices[t.name] = src.slice;
    } else if (router) {
      weightMap[t.name] = `${router[1]}.router.${router[2]}`;
    } else {
      weightMap[t.name] = t.name;
    }
  }
  return { model, weightMap, storedShapes, storedSlices };
}
