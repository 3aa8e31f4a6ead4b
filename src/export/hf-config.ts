/**
 * ModelIR → a HuggingFace config.json (transformers 5 spelling), the inverse of src/import/hf.ts
 * for the transformers model types it imports, and for fla's linear-attention types (fla.ts). The model type is picked from the layer kinds (or
 * forced); its writer (hf-decoders.ts, hf-hybrids.ts) writes one setting per layer kind, and the
 * written text is then imported back with strata's own importer: the export is returned only if
 * that gives the design again (up to names). Anything else (a per-layer setting the type cannot
 * vary, a norm or a scale it does not have, a layout it cannot place) is an ExportError naming
 * the feature, the layer and the type, so an export is never silently a different model.
 */
import type { ModelIR } from '../spec/model.ts';
import { deepEqual } from '../spec/equal.ts';
import { importHfConfig } from '../import/hf.ts';
import { readConfigJson } from '../import/json.ts';
import { ExportError, mixerKind, requireMixers, type Json, type JsonObject } from './hf-common.ts';
import {
  exportDeepseekV3,
  exportDeepseekV32,
  exportGemma3Text,
  exportGptOss,
  exportLlama,
  exportMistral,
  exportMixtral,
  exportQwen3,
  exportQwen3Moe,
} from './hf-decoders.ts';
import {
  exportBamba,
  exportFalconH1,
  exportGraniteMoeHybrid,
  exportJamba,
  exportLfm2,
  exportMamba,
  exportMamba2,
  exportNemotronH,
  exportQwen3Next,
  exportZamba2,
} from './hf-hybrids.ts';
import {
  exportFlaDeltaNet,
  exportFlaGatedDeltaNet,
  exportFlaGla,
  exportFlaHgrn2,
  exportFlaLinearAttn,
  exportFlaRetNet,
  exportFlaRwkv7,
} from './fla.ts';

export { ExportError } from './hf-common.ts';

interface HfType {
  modelType: string;
  /** The mixer kinds its layers can have ('none': a layer without mixer). */
  mixers: readonly string[];
  /** Shared transformer blocks (Zamba2). */
  sharedBlocks?: true;
  /** State-space only: the config has no context length (the import assumes 2^20). */
  noContext?: true;
  /**
   * fla's types (registered with transformers' Auto classes by fla): a design needs a layer of
   * this kind to take the type, so an all-attention design is never written as a linear one.
   */
  fla?: string;
  write(m: ModelIR): JsonObject;
}

/** In the order auto-picking tries them: the plainest type that expresses a design wins. */
const HF_TYPES: readonly HfType[] = [
  { modelType: 'llama', mixers: ['attention'], write: exportLlama },
  { modelType: 'mistral', mixers: ['attention'], write: exportMistral },
  { modelType: 'qwen3', mixers: ['attention'], write: exportQwen3 },
  { modelType: 'gemma3_text', mixers: ['attention'], write: exportGemma3Text },
  { modelType: 'mixtral', mixers: ['attention'], write: exportMixtral },
  { modelType: 'qwen3_moe', mixers: ['attention'], write: exportQwen3Moe },
  { modelType: 'gpt_oss', mixers: ['attention'], write: exportGptOss },
  { modelType: 'deepseek_v3', mixers: ['mla'], write: exportDeepseekV3 },
  { modelType: 'deepseek_v32', mixers: ['mla'], write: exportDeepseekV32 },
  { modelType: 'mamba', mixers: ['mamba1'], noContext: true, write: exportMamba },
  { modelType: 'jamba', mixers: ['mamba1', 'attention'], write: exportJamba },
  { modelType: 'mamba2', mixers: ['mamba2'], noContext: true, write: exportMamba2 },
  { modelType: 'bamba', mixers: ['mamba2', 'attention'], write: exportBamba },
  { modelType: 'nemotron_h', mixers: ['mamba2', 'attention', 'none'], write: exportNemotronH },
  {
    modelType: 'granitemoehybrid',
    mixers: ['mamba2', 'attention'],
    write: exportGraniteMoeHybrid,
  },
  { modelType: 'zamba2', mixers: ['mamba2'], sharedBlocks: true, write: exportZamba2 },
  { modelType: 'falcon_h1', mixers: ['parallel'], write: exportFalconH1 },
  { modelType: 'lfm2', mixers: ['shortconv', 'attention'], write: exportLfm2 },
  { modelType: 'qwen3_next', mixers: ['gated_deltanet', 'attention'], write: exportQwen3Next },
  { modelType: 'gla', mixers: ['gla', 'attention'], fla: 'gla', write: exportFlaGla },
  { modelType: 'retnet', mixers: ['retnet', 'attention'], fla: 'retnet', write: exportFlaRetNet },
  {
    modelType: 'linear_attn',
    mixers: ['linear_attn', 'attention'],
    fla: 'linear_attn',
    write: exportFlaLinearAttn,
  },
  {
    modelType: 'delta_net',
    mixers: ['deltanet', 'attention'],
    fla: 'deltanet',
    write: exportFlaDeltaNet,
  },
  {
    modelType: 'gated_deltanet',
    mixers: ['deltanet', 'attention'],
    fla: 'deltanet',
    write: exportFlaGatedDeltaNet,
  },
  { modelType: 'hgrn2', mixers: ['hgrn2', 'attention'], fla: 'hgrn2', write: exportFlaHgrn2 },
  { modelType: 'rwkv7', mixers: ['rwkv7'], fla: 'rwkv7', write: exportFlaRwkv7 },
];

/** Every model type `--hf` writes. */
export const HF_EXPORT_TYPES: readonly string[] = HF_TYPES.map((t) => t.modelType);

export interface HfExport {
  modelType: string;
  config: JsonObject;
  /** config.json's text: sorted keys, non-finite floats as transformers 5 writes them. */
  text: string;
  /** What the config leaves out that changes nothing computed (for the user to see). */
  notes: string[];
}

/**
 * The design as `type`'s config, or (type undefined) as the first type in HF_TYPES that
 * expresses it. Throws ExportError when none (or `type`) can.
 */
export function exportHfConfig(model: ModelIR, type?: string): HfExport {
  if (model.diffusion) {
    throw new ExportError(
      'a masked-diffusion model (LLaDA) has no transformers model type among those --hf writes',
    );
  }
  if (model.headBias) {
    throw new ExportError(
      'an output head bias (head_bias): the lm_head of every type --hf writes has no bias',
    );
  }
  if (type !== undefined) {
    const t = HF_TYPES.find((x) => x.modelType === type);
    if (!t) {
      throw new ExportError(
        `--type ${type} is not a type --hf writes (${HF_EXPORT_TYPES.join(', ')})`,
      );
    }
    return exportAs(model, t);
  }
  const candidates = HF_TYPES.filter((t) => fits(model, t));
  if (candidates.length === 0) {
    const kinds = [...new Set(model.layers.map(mixerKind))];
    const odd = model.layers.find((l) => !HF_TYPES.some((t) => t.mixers.includes(mixerKind(l))));
    const what = odd
      ? `layer ${odd.index}'s ${mixerKind(odd)} mixer`
      : `the mix of ${kinds.join(', ')} mixers${model.sharedBlocks?.length ? ' with shared blocks' : ''}`;
    throw new ExportError(`no model type --hf writes has ${what} (${HF_EXPORT_TYPES.join(', ')})`);
  }
  const reasons: string[] = [];
  for (const t of candidates) {
    try {
      return exportAs(model, t);
    } catch (e) {
      if (!(e instanceof ExportError)) throw e;
      reasons.push(`  ${e.message}`);
    }
  }
  throw new ExportError(
    `no model type --hf writes expresses this design; the types with its layer kinds say:\n${reasons.join('\n')}`,
  );
}

/** Whether the type has every layer kind of the design (and an fla type its own kind). */
function fits(m: ModelIR, t: HfType): boolean {
  if ((m.sharedBlocks?.length ?? 0) > 0 && !t.sharedBlocks) return false;
  if (t.fla && !m.layers.some((l) => mixerKind(l) === t.fla)) return false;
  return m.layers.every((l) => t.mixers.includes(mixerKind(l)));
}

function exportAs(model: ModelIR, t: HfType): HfExport {
  const type = t.modelType;
  if ((model.sharedBlocks?.length ?? 0) > 0 && !t.sharedBlocks) {
    throw new ExportError(`${type} cannot express shared blocks: it has no shared transformer`);
  }
  // The mixer kinds first: a layer the type has no kind for is the plainest thing to name.
  requireMixers(type, model, t.mixers);
  const config = t.write(model);
  const text = hfConfigText(config);
  let back: ModelIR;
  try {
    const { config: parsed, origin } = readConfigJson(text, 'config.json');
    back = importHfConfig(parsed as object, model.name, origin).model;
  } catch (e) {
    if (e instanceof ExportError) throw e;
    const reason = e instanceof Error ? e.message : String(e);
    throw new ExportError(
      `${type} cannot express this design: its config would not import (${reason})`,
    );
  }
  const notes: string[] = [];
  if (t.noContext && back.maxContext !== model.maxContext) {
    notes.push(
      `${type} configs carry no context length: max_context ${model.maxContext} is not written (strata imports ${back.maxContext})`,
    );
  }
  const diff = firstDifference(
    comparable(model, !!t.noContext),
    comparable(back, !!t.noContext),
    [],
  );
  if (diff) throw new ExportError(describe(type, diff));
  return { modelType: type, config, text, notes };
}

type Plain = { [key: string]: unknown };

/**
 * The model as a plain object without the names a config does not carry (the model's, its
 * mixer, FFN and shared-block definitions'); shared blocks renamed by their order.
 */
function comparable(m: ModelIR, noContext: boolean): Plain {
  const blocks = new Map((m.sharedBlocks ?? []).map((b, k) => [b.name, `shared${k}`]));
  const c = structuredClone(m) as unknown as Plain;
  c.name = '';
  if (noContext) c.maxContext = 0;
  if (blocks.size === 0) delete c.sharedBlocks;
  else c.sharedBlocks = (m.sharedBlocks ?? []).map((b) => ({ ...b, name: blocks.get(b.name) }));
  c.layers = m.layers.map((l) => {
    const out: Plain = { ...l, mixerName: '', ffnName: '' };
    if (l.shared) out.shared = blocks.get(l.shared);
    else delete out.shared;
    return out;
  });
  return c;
}

interface Difference {
  path: (string | number)[];
  want: unknown;
  got: unknown;
}

function firstDifference(a: unknown, b: unknown, path: (string | number)[]): Difference | null {
  if (deepEqual(a, b)) return null;
  const isObj = (x: unknown): x is Plain => typeof x === 'object' && x !== null;
  if (!isObj(a) || !isObj(b) || Array.isArray(a) !== Array.isArray(b)) {
    return { path, want: a, got: b };
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) {
    return { path: [...path, 'length'], want: a.length, got: b.length };
  }
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  for (const k of keys) {
    const key = Array.isArray(a) ? Number(k) : k;
    const d = firstDifference(a[k], b[k], [...path, key]);
    if (d) return d;
  }
  return { path, want: a, got: b };
}

function show(v: unknown): string {
  if (v === undefined) return '(absent)';
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** "llama cannot express layer 3: mixer.qkNorm = true (a llama config gives false)". */
function describe(type: string, d: Difference): string {
  const [head, index, ...rest] = d.path;
  let where: string;
  if (head === 'layers' && typeof index === 'number') {
    where = rest.length ? `layer ${index}: ${rest.join('.')}` : `layer ${index}`;
  } else if (head === 'sharedBlocks' && typeof index === 'number') {
    where = `shared block ${index}: ${rest.join('.')}`;
  } else if (head === 'layers' && index === 'length') {
    where = 'the layer count';
  } else {
    where = d.path.join('.');
  }
  return `${type} cannot express ${where} = ${show(d.want)} (a ${type} config gives ${show(d.got)})`;
}

/**
 * Keys whose config attribute is a float: written with a decimal point even when integral
 * (2.0, not 2), as Python writes them, since transformers' strict config classes refuse an int
 * there (FalconH1Config's embedding_multiplier, the rope dict's attention_factor).
 */
const FLOAT_KEYS: ReadonlySet<string> = new Set([
  'rms_norm_eps',
  'layer_norm_epsilon',
  'norm_eps',
  'rope_theta',
  'partial_rotary_factor',
  'factor',
  'low_freq_factor',
  'high_freq_factor',
  'beta_fast',
  'beta_slow',
  'attention_factor',
  'mscale_all_dim',
  'embedding_multiplier',
  'residual_multiplier',
  'logits_scaling',
  'attention_multiplier',
  'lm_head_multiplier',
  'key_multiplier',
  'attention_in_multiplier',
  'attention_out_multiplier',
  'ssm_in_multiplier',
  'ssm_out_multiplier',
  'ssm_multipliers',
  'mlp_multipliers',
  'routed_scaling_factor',
  'swiglu_limit',
  'time_step_min',
  'time_step_limit',
  'attn_logit_softcapping',
  'final_logit_softcapping',
]);

/** Marks an integral float for hfConfigText; JSON.stringify cannot write 2.0 itself. */
const FLOAT_MARK = '@strata-float@';

/**
 * JSON as transformers 5 writes config.json: sorted keys, floats with a decimal point (see
 * FLOAT_KEYS), inf as {"__float__": "Infinity"}.
 */
export function hfConfigText(config: JsonObject): string {
  const sorted = (v: Json, float: boolean): unknown => {
    if (typeof v === 'number' && !Number.isFinite(v)) {
      return { __float__: Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity' };
    }
    if (typeof v === 'number' && float && Number.isInteger(v)) return `${FLOAT_MARK}${v}`;
    if (Array.isArray(v)) return v.map((x) => sorted(x, float));
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sorted(v[k], FLOAT_KEYS.has(k))]),
      );
    }
    return v;
  };
  const text = JSON.stringify(sorted(config, false), null, 2);
  return text.replace(new RegExp(`"${FLOAT_MARK}(-?\\d+)"`, 'g'), '$1.0') + '\n';
}
