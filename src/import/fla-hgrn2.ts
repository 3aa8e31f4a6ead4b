/**
 * fla's `hgrn2` model type (HGRN2Config, HGRN2ForCausalLM; fla 0.5.2): HGRN2Attention at every
 * layer the hybrid `attn` key leaves to it (src/mixers/hgrn2.ts). Sizes follow the layer, not
 * the config object: with expand_ratio set, heads = hidden // expand_ratio and num_heads is not
 * read; without it (null), expand_ratio = hidden // num_heads. The key width heads ·
 * expand_ratio must be the hidden size, as the model-level lower bound [layers, hidden] is
 * added to it. Each layer's lower bound is a stored slice of `model.lower_bounds` with the
 * cumulative-softmax post-step (src/import/convert.ts); layer 0 has none, as in fla.
 */
import { lowerBoundName, type Hgrn2Spec } from '../mixers/hgrn2.ts';
import type { ConfigReader } from './config-reader.ts';
import { flaModel, flaWeights, readFlaAttention, readFlaShell } from './fla-common.ts';
import type { FamilyImport } from './hf-ssm.ts';

/** fla's model-level parameter every layer's lower bound is derived from. */
const LOWER_BOUNDS = 'model.lower_bounds';

function readHeads(cfg: ConfigReader, dim: number): { heads: number; keyHeadDim: number } {
  // An absent expand_ratio is the class default 128; an explicit null defers to num_heads.
  const ratioKey = cfg.raw('expand_ratio');
  if (ratioKey === null) {
    if (!cfg.has('num_heads'))
      cfg.fail('expand_ratio', 'is null and num_heads is not given (fla needs one of them)');
    const heads = cfg.positiveInt('num_heads');
    if (dim % heads !== 0) cfg.fail('num_heads', `${heads} does not divide hidden_size ${dim}`);
    return { heads, keyHeadDim: dim / heads };
  }
  const ratio = cfg.positiveInt('expand_ratio', 128);
  // The layer derives the heads from expand_ratio and never reads num_heads.
  cfg.ignore('num_heads');
  if (dim % ratio !== 0) {
    cfg.fail('expand_ratio', `${ratio} does not divide hidden_size ${dim}`);
  }
  return { heads: dim / ratio, keyHeadDim: ratio };
}

export function importFlaHgrn2(cfg: ConfigReader, name: string): FamilyImport {
  const shell = readFlaShell(cfg, { dim: 2048, layers: 24 });
  const { heads, keyHeadDim } = readHeads(cfg, shell.dim);
  const shortConv = cfg.bool('use_short_conv', false);
  const dConv = shortConv ? cfg.positiveInt('conv_size', 4) : null;
  if (dConv !== null && dConv < 2) cfg.fail('conv_size', `must be at least 2, got ${dConv}`);
  cfg.ignore('conv_size');
  const spec: Hgrn2Spec = {
    kind: 'hgrn2',
    heads,
    keyHeadDim,
    valueHeadDim: shell.dim / heads,
    dConv,
    lowerBound: cfg.bool('use_lower_bound', true),
    // HGRN2Attention calls rms_norm_linear(o, g_norm.weight, ...) without g_norm's eps, so the
    // output norm runs with that function's default 1e-5 whatever norm_eps says.
    normEps: 1e-5,
  };
  const attn = readFlaAttention(cfg, shell);
  const model = flaModel(name, shell, attn, 'hgrn2', () => structuredClone(spec));
  const mapped = flaWeights(model);
  const storedSlices: NonNullable<FamilyImport['storedSlices']> = {};
  for (const layer of model.layers) {
    if (layer.mixer?.kind !== 'hgrn2' || !layer.mixer.lowerBound || layer.index === 0) continue;
    const canonical = lowerBoundName(layer.index);
    mapped.weightMap[canonical] = LOWER_BOUNDS;
    mapped.storedShapes[canonical] = [shell.layers, shell.dim];
    storedSlices[canonical] = {
      start: [0, 0],
      size: [shell.layers, shell.dim],
      cumulativeSoftmax: { row: layer.index },
    };
  }
  return { model, ...mapped, storedSlices };
}
