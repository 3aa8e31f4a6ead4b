/**
 * The model-level `diffusion` setting: the model is a masked-diffusion LM (LLaDA, Dream, BD3-LM) whose sampler
 * denoises a canvas of mask tokens, and these are its mask id and the sampler's defaults (the
 * schedule rules are src/ops/diffusion.ts's, shared with the CLI flags that override them).
 */
import {
  DREAM_ALGS,
  DREAM_EPS,
  REMASKINGS,
  scheduleIssues,
  scheduleOfSpec,
} from '../../ops/diffusion.ts';
import { BLOCK_SAMPLERS, blockScheduleIssues } from '../../ops/block-diffusion.ts';
import { ENTROPY_BOUND_DEFAULTS, entropyBoundIssues } from '../../ops/diffusion-entropy.ts';
import { EXPERT_FFNS } from './moe.ts';
import type { Issue, Namer } from '../checks.ts';
import { defineKind, opt, req, toDslCall, type Family } from '../kind.ts';
import type { BlockDiffusionSpec, DiffusionSpec, EntropyBoundSpec, ModelIR } from '../model.ts';
import { block, bool, int, nonNegative, oneOf, positive } from '../values.ts';

/** The reference generate()'s defaults (ML-GSAI/LLaDA generate.py). */
export const LLADA_DEFAULTS = {
  genLength: 128,
  blockLength: 128,
  steps: 128,
  remasking: 'low_confidence',
  temperature: 0,
  cfgScale: 0,
} as const;

/** Dream's diffusion_generate defaults (DreamGenerationConfig; steps there are 512). */
export const DREAM_DEFAULTS = {
  genLength: 128,
  temperature: 0,
  eps: DREAM_EPS,
  // Dream's model cards sample with alg entropy; the class default, origin, is a random
  // process (torch.rand per mask) that strata does not implement.
  alg: 'entropy',
} as const;

/** Every kind of the model-level diffusion setting. */
export type AnyDiffusionSpec = DiffusionSpec | BlockDiffusionSpec | EntropyBoundSpec;

export function checkDiffusion(s: AnyDiffusionSpec, n: Namer): Issue[] {
  if (s.kind === 'entropy_bound') {
    const out: Issue[] = entropyBoundIssues(
      { ...s, eos: [], pad: null, seed: 0 },
      Number.MAX_SAFE_INTEGER,
    ).map((i) => ({ path: [i.field], message: i.message(n) }));
    const f = s.selfCondition;
    if (
      !f.gated ||
      f.bias ||
      f.tokenShift ||
      f.gateScale !== undefined ||
      f.downScale !== undefined
    )
      out.push({
        path: ['selfCondition'],
        message: `${n('selfCondition')} must be a gated MLP without bias or multipliers (geglu(...) or swiglu(...))`,
      });
    return out;
  }
  if (s.kind === 'bd3lm')
    return blockScheduleIssues(s, null).map((i) => ({ path: [i.field], message: i.message(n) }));
  const out = scheduleIssues(scheduleOfSpec(s)).map((i) => ({
    path: [i.field],
    message: i.message(n),
  }));
  if (s.kind === 'llada' && s.eps !== undefined)
    out.push({ path: ['eps'], message: `${n('eps')} belongs to diffusion dream, not llada` });
  if (s.kind === 'dream' && (s.blockLength !== s.genLength || s.cfgScale !== 0))
    out.push({
      path: ['blockLength'],
      message: `diffusion dream decodes the whole answer as one block without guidance: ${n('blockLength')} must equal ${n('genLength')} and ${n('cfgScale')} be 0`,
    });
  return out;
}

export const llada = defineKind({
  name: 'llada',
  params: {
    mask_id: req(int(0)),
    gen_length: opt(int(1)),
    block_length: opt(int(1)),
    steps: opt(int(1)),
    remasking: opt(oneOf('remasking', REMASKINGS)),
    temperature: opt(nonNegative),
    cfg_scale: opt(nonNegative),
    shift_logits: opt(bool),
  },
  build: (a): DiffusionSpec => {
    const genLength = a.gen_length ?? LLADA_DEFAULTS.genLength;
    return {
      kind: 'llada',
      maskId: a.mask_id,
      genLength,
      // The reference's default block is the whole answer; a shorter gen_length keeps that.
      blockLength: a.block_length ?? Math.min(genLength, LLADA_DEFAULTS.blockLength),
      steps: a.steps ?? genLength,
      remasking: a.remasking ?? LLADA_DEFAULTS.remasking,
      temperature: a.temperature ?? LLADA_DEFAULTS.temperature,
      cfgScale: a.cfg_scale ?? LLADA_DEFAULTS.cfgScale,
      ...(a.shift_logits ? { shiftLogits: true } : {}),
    };
  },
  check: checkDiffusion,
  toArgs: (s) =>
    s.kind !== 'llada'
      ? null
      : [
          { name: 'mask_id', value: s.maskId },
          { name: 'gen_length', value: s.genLength },
          { name: 'block_length', value: s.blockLength },
          { name: 'steps', value: s.steps },
          { name: 'remasking', value: { name: s.remasking } },
          { name: 'temperature', value: s.temperature },
          { name: 'cfg_scale', value: s.cfgScale },
          ...(s.shiftLogits ? [{ name: 'shift_logits', value: true }] : []),
        ],
});

/**
 * Dream (HKUNLP): its diffusion_generate's sampler, whole answer in one block, counts by its
 * eps schedule, the confidence of its deterministic algs (`alg`: maskgit_plus, topk_margin,
 * entropy, stored as remasking low_confidence, margin, entropy), and logits shifted right by one
 * (shift_logits, on unless a checkpoint says otherwise).
 */
export const dream = defineKind({
  name: 'dream',
  params: {
    mask_id: req(int(0)),
    gen_length: opt(int(1)),
    steps: opt(int(1)),
    alg: opt(oneOf('alg', Object.keys(DREAM_ALGS))),
    eps: opt(positive),
    temperature: opt(nonNegative),
    shift_logits: opt(bool),
  },
  build: (a): DiffusionSpec => {
    const genLength = a.gen_length ?? DREAM_DEFAULTS.genLength;
    return {
      kind: 'dream',
      maskId: a.mask_id,
      genLength,
      blockLength: genLength,
      steps: a.steps ?? genLength,
      remasking: DREAM_ALGS[a.alg ?? DREAM_DEFAULTS.alg],
      temperature: a.temperature ?? DREAM_DEFAULTS.temperature,
      cfgScale: 0,
      ...((a.shift_logits ?? true) ? { shiftLogits: true } : {}),
      eps: a.eps ?? DREAM_DEFAULTS.eps,
    };
  },
  check: checkDiffusion,
  toArgs: (s) => {
    if (s.kind !== 'dream') return null;
    const alg = Object.keys(DREAM_ALGS).find((k) => DREAM_ALGS[k] === s.remasking);
    return alg === undefined
      ? null
      : [
          { name: 'mask_id', value: s.maskId },
          { name: 'gen_length', value: s.genLength },
          { name: 'steps', value: s.steps },
          { name: 'alg', value: { name: alg } },
          { name: 'eps', value: s.eps ?? DREAM_EPS },
          { name: 'temperature', value: s.temperature },
          { name: 'shift_logits', value: s.shiftLogits === true },
        ];
  },
});

/** bd3lms's sampling defaults (configs/config.yaml: first_hitting, nucleus_p 1.0). */
export const BD3LM_DEFAULTS = {
  genLength: 128,
  sampler: 'first_hitting',
  temperature: 1,
  nucleusP: 1,
} as const;

export const bd3lm = defineKind({
  name: 'bd3lm',
  params: {
    mask_id: req(int(0)),
    block_length: req(int(1)),
    gen_length: opt(int(1)),
    steps: opt(int(1)),
    sampler: opt(oneOf('sampler', BLOCK_SAMPLERS)),
    temperature: opt(nonNegative),
    nucleus_p: opt(positive),
  },
  build: (a): BlockDiffusionSpec => ({
    kind: 'bd3lm',
    maskId: a.mask_id,
    genLength: a.gen_length ?? BD3LM_DEFAULTS.genLength,
    blockLength: a.block_length,
    // First hitting commits one token a step: a block's length is enough.
    steps: a.steps ?? a.block_length,
    sampler: a.sampler ?? BD3LM_DEFAULTS.sampler,
    temperature: a.temperature ?? BD3LM_DEFAULTS.temperature,
    nucleusP: a.nucleus_p ?? BD3LM_DEFAULTS.nucleusP,
  }),
  check: checkDiffusion,
  toArgs: (s) =>
    s.kind !== 'bd3lm'
      ? null
      : [
          { name: 'mask_id', value: s.maskId },
          { name: 'block_length', value: s.blockLength },
          { name: 'gen_length', value: s.genLength },
          { name: 'steps', value: s.steps },
          { name: 'sampler', value: { name: s.sampler } },
          { name: 'temperature', value: s.temperature },
          { name: 'nucleus_p', value: s.nucleusP },
        ],
});

/**
 * DiffusionGemma's block diffusion over uniform noise (src/ops/diffusion-entropy.ts's sampler,
 * HF's DiffusionGemmaGenerationConfig defaults): canvases of canvas_length tokens, the
 * entropy-bounded acceptance, and the self-conditioning MLP the denoiser's input reads.
 */
export const entropyBound = defineKind({
  name: 'entropy_bound',
  params: {
    canvas_length: req(int(1)),
    self_condition: req(block(EXPERT_FFNS)),
    gen_length: opt(int(1)),
    max_steps: opt(int(1)),
    t_min: opt(nonNegative),
    t_max: opt(nonNegative),
    entropy_bound: opt(positive),
    stability_threshold: opt(int(0)),
    confidence_threshold: opt(nonNegative),
  },
  build: (a, ctx): EntropyBoundSpec => ({
    kind: 'entropy_bound',
    canvasLength: a.canvas_length,
    genLength: a.gen_length ?? a.canvas_length,
    maxSteps: a.max_steps ?? ENTROPY_BOUND_DEFAULTS.maxSteps,
    tMin: a.t_min ?? ENTROPY_BOUND_DEFAULTS.tMin,
    tMax: a.t_max ?? ENTROPY_BOUND_DEFAULTS.tMax,
    entropyBound: a.entropy_bound ?? ENTROPY_BOUND_DEFAULTS.entropyBound,
    stabilityThreshold: a.stability_threshold ?? ENTROPY_BOUND_DEFAULTS.stabilityThreshold,
    confidenceThreshold: a.confidence_threshold ?? ENTROPY_BOUND_DEFAULTS.confidenceThreshold,
    selfCondition: a.self_condition(ctx),
  }),
  check: checkDiffusion,
  toArgs: (s) =>
    s.kind !== 'entropy_bound'
      ? null
      : [
          { name: 'canvas_length', value: s.canvasLength },
          { name: 'self_condition', value: toDslCall(EXPERT_FFNS, s.selfCondition).value },
          { name: 'gen_length', value: s.genLength },
          { name: 'max_steps', value: s.maxSteps },
          { name: 't_min', value: s.tMin },
          { name: 't_max', value: s.tMax },
          { name: 'entropy_bound', value: s.entropyBound },
          { name: 'stability_threshold', value: s.stabilityThreshold },
          { name: 'confidence_threshold', value: s.confidenceThreshold },
        ],
});

export const DIFFUSIONS: Family<AnyDiffusionSpec> = {
  noun: 'diffusion',
  example:
    'llada(mask_id: ...), dream(mask_id: ...), bd3lm(mask_id: ..., block_length: ...) or entropy_bound(canvas_length: ..., self_condition: ...)',
  kinds: [llada, dream, bd3lm, entropyBound],
};

/**
 * Rules between the diffusion setting and the rest of the model: the mask id is a token, and
 * every layer's mixer is bidirectional attention (a causal or recurrent mixer would let a
 * position see only the canvas before it, which is not the model LLaDA trained). Paths are from
 * the model root.
 */
export function diffusionModelIssues(m: ModelIR, n: Namer): Issue[] {
  const d = m.diffusion;
  if (!d) return [];
  if (d.kind === 'entropy_bound') return entropyBoundModelIssues(m, n);
  const issues: Issue[] = [];
  if (d.maskId >= m.vocab) {
    issues.push({
      path: ['diffusion', 'maskId'],
      message: `${n('maskId')} ${d.maskId} must be a token id below ${n('vocab')} (${m.vocab})`,
    });
  }
  if (d.kind === 'bd3lm') return [...issues, ...blockModelIssues(m, d, n)];
  for (const l of m.layers) {
    if (l.mixer?.kind === 'attention' && !l.mixer.causal && !l.mixer.blockCausal) continue;
    const what = !l.mixer
      ? 'has no mixer'
      : l.mixer.kind !== 'attention'
        ? `uses ${l.mixer.kind} mixer '${l.mixerName}'`
        : l.mixer.blockCausal
          ? `uses block-causal attention '${l.mixerName}' (drop ${n('blockCausal')}, or use diffusion bd3lm)`
          : `uses causal attention '${l.mixerName}' (set causal: false)`;
    issues.push({
      path: ['layers', l.index, 'mixer'],
      message: `a diffusion model needs bidirectional attention (attention with causal: false) in every layer; layer ${l.index} ${what}`,
    });
    break;
  }
  if (m.sharedBlocks?.length) {
    issues.push({
      path: ['sharedBlocks'],
      message: 'a diffusion model cannot have shared blocks yet',
    });
  }
  return issues;
}

/**
 * DiffusionGemma's rules: every layer is phased attention (causal while encoding, the
 * denoiser's mask while denoising), and no shared blocks or batch-unfriendly extras.
 */
function entropyBoundModelIssues(m: ModelIR, n: Namer): Issue[] {
  const bad = m.layers.find((l) => !(l.mixer?.kind === 'attention' && l.mixer.phased));
  if (bad)
    return [
      {
        path: ['layers', bad.index, 'mixer'],
        message: `an entropy_bound diffusion model runs its layers as a causal encoder and a bidirectional denoiser: every layer needs attention with ${n('phased')}: true; layer ${bad.index} ${bad.mixer ? `uses ${bad.mixer.kind === 'attention' ? 'attention without it' : `a ${bad.mixer.kind} mixer`} ('${bad.mixerName}')` : 'has no mixer'}`,
      },
    ];
  if (m.sharedBlocks?.length)
    return [{ path: ['sharedBlocks'], message: 'a diffusion model cannot have shared blocks yet' }];
  return [];
}

/**
 * A block-diffusion model's rules: every layer is block-causal attention of one block B, and the
 * sampler's block length is a multiple of B (a committed block's K/V would otherwise change).
 */
function blockModelIssues(m: ModelIR, d: BlockDiffusionSpec, n: Namer): Issue[] {
  let B: number | null = null;
  for (const l of m.layers) {
    const b = l.mixer?.kind === 'attention' ? (l.mixer.blockCausal ?? null) : null;
    if (b !== null && (B === null || b === B)) {
      B = b;
      continue;
    }
    const what = !l.mixer
      ? 'has no mixer'
      : l.mixer.kind !== 'attention'
        ? `uses ${l.mixer.kind} mixer '${l.mixerName}'`
        : b === null
          ? `uses attention '${l.mixerName}' without ${n('blockCausal')}`
          : `uses ${n('blockCausal')} ${b}, unlike the ${B} of the layers before it`;
    return [
      {
        path: ['layers', l.index, 'mixer'],
        message: `a block-diffusion model (bd3lm) needs block-causal attention (${n('blockCausal')}: B, the same B) in every layer; layer ${l.index} ${what}`,
      },
    ];
  }
  const bad = B === null ? null : blockScheduleIssues(d, B).find((i) => i.field === 'blockLength');
  return bad ? [{ path: ['diffusion', 'blockLength'], message: bad.message(n) }] : [];
}

/** One line for check and inspect: the mask id and the sampler defaults. */
export function describeDiffusion(d: AnyDiffusionSpec): string {
  if (d.kind === 'entropy_bound')
    return (
      `diffusion entropy_bound: canvases of ${d.canvasLength} over uniform noise, gen length ${d.genLength}, at most ${d.maxSteps} steps a canvas, ` +
      `temperature ${d.tMax} → ${d.tMin}, entropy bound ${d.entropyBound}, self-conditioned (${d.selfCondition.act} MLP of ${d.selfCondition.hidden})`
    );
  if (d.kind === 'bd3lm') {
    const nucleus = d.nucleusP < 1 ? `, nucleus p ${d.nucleusP}` : '';
    return (
      `diffusion bd3lm: mask id ${d.maskId}, gen length ${d.genLength} in blocks of ${d.blockLength} (each denoised against the exact KV cache of the committed ones), ` +
      `${d.sampler === 'first_hitting' ? `first-hitting sampler (one token a step, at most ${d.steps} steps a block)` : `ddpm sampler, ${d.steps} steps a block`}, temperature ${d.temperature}${nucleus}`
    );
  }
  if (d.kind === 'dream')
    return (
      `diffusion dream: mask id ${d.maskId}, gen length ${d.genLength}, ${d.steps} steps (eps ${d.eps ?? DREAM_EPS}), ` +
      `${d.remasking} confidence, temperature ${d.temperature}${d.shiftLogits ? ', logits shifted right by one' : ''}`
    );
  const blocks = d.genLength / d.blockLength;
  return (
    `diffusion llada: mask id ${d.maskId}, gen length ${d.genLength} in ${blocks} block${blocks === 1 ? '' : 's'} of ${d.blockLength}, ` +
    `${d.steps} steps (${d.steps / blocks} per block), ${d.remasking} remasking, temperature ${d.temperature}` +
    (d.shiftLogits ? ', logits shifted right by one' : '')
  );
}
