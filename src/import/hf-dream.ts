/**
 * Dream (`Dream`, remote code: Dream-org/Dream-v0-*-7B, modeling_dream.py as NVlabs/Fast-dLLM
 * carries it): Qwen2's layout (q/k/v biases, no output bias, gated MLP, RMSNorm, RoPE), with
 * attention never masked (is_causal hard-coded False, no window: the SDPA path ignores
 * sliding_window), imported as a masked-diffusion model with Dream's sampler. Its logits are
 * shifted right by one: diffusion_generate reads position i's prediction from row i − 1, which
 * the spec's `shift_logits` tells strata's sampler. Tensor names are HF Qwen2's, which are
 * strata's canonical ones.
 */
import { DREAM_DEFAULTS } from '../spec/kinds/diffusion.ts';
import { DREAM_ALGS } from '../ops/diffusion.ts';
import type { ConfigReader } from './config-reader.ts';
import { bidirectionalLayers, readKvHeads } from './hf-attention.ts';
import { readActivation } from './hf-decoder.ts';
import { modelIR, rmsNorm } from './hf-model.ts';
import { readRope } from './hf-rope.ts';
import { expectedTensors } from './names.ts';
import type { FamilyImport } from './registry.ts';

/** DreamConfig's mask_token_id default. */
export const DREAM_MASK_ID = 151666;

export function importDream(cfg: ConfigReader, name: string): FamilyImport {
  const vocab = cfg.positiveInt('vocab_size', 151936);
  const dim = cfg.positiveInt('hidden_size', 4096);
  const hidden = cfg.positiveInt('intermediate_size', 22016);
  const nLayers = cfg.positiveInt('num_hidden_layers', 32);
  const heads = cfg.positiveInt('num_attention_heads', 32);
  const kvHeads = readKvHeads(cfg, heads, 32);
  // DreamAttention: head_dim = hidden_size // num_heads, refused unless exact.
  if (dim % heads !== 0)
    cfg.fail('hidden_size', `${dim} is not a multiple of num_attention_heads ${heads}`);
  const headDim = dim / heads;
  const act = readActivation(cfg, 'hidden_act', 'silu');
  const eps = cfg.num('rms_norm_eps', 1e-6);
  if (!(eps > 0)) cfg.fail('rms_norm_eps', `must be positive, got ${eps}`);
  const maxContext = cfg.positiveInt('max_position_embeddings', 32768);
  const rope = readRope(cfg, {
    headDim,
    maxPositions: maxContext,
    defaultTheta: 10000,
    family: 'Dream',
  });
  // Dream's SDPA attention never applies a window (its decoder layer only warns), so these keys
  // do not change what the reference computes.
  cfg.ignore('use_sliding_window', 'sliding_window', 'max_window_layers');
  const maskId = cfg.int('mask_token_id', DREAM_MASK_ID);
  if (maskId < 0 || maskId >= vocab)
    cfg.fail('mask_token_id', `${maskId} is not a token id below vocab_size ${vocab}`);

  const layers = bidirectionalLayers(
    nLayers,
    { heads, kvHeads, headDim, rope, qkvBias: true },
    { hidden, act },
  );
  const model = modelIR(name, layers, rmsNorm(eps), {
    vocab,
    dim,
    tie: cfg.bool('tie_word_embeddings', false),
    maxContext,
  });
  const g = DREAM_DEFAULTS.genLength;
  model.diffusion = {
    kind: 'dream',
    maskId,
    genLength: g,
    blockLength: g,
    steps: g,
    remasking: DREAM_ALGS[DREAM_DEFAULTS.alg],
    temperature: DREAM_DEFAULTS.temperature,
    cfgScale: 0,
    shiftLogits: true,
    eps: DREAM_DEFAULTS.eps,
  };
  const weightMap = Object.fromEntries(expectedTensors(model).map((t) => [t.name, t.name]));
  return { model, weightMap, storedShapes: {} };
}
