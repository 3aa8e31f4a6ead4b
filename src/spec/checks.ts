/**
 * Cross-field rules on resolved blocks, shared by the DSL resolver and the YAML/JSON loader so a
 * rule is written once. Issues name IR fields; a Namer renders them in the user's vocabulary
 * (kv_heads in .strata, kvHeads in YAML).
 */
import type { AttentionSpec, MixerSpec, MlpSpec, MoeSpec, NormSpec, RopeSpec } from './model.ts';

import { mixerDef } from '../mixers/lookup.ts';

export interface Issue {
  /** IR field path from the checked object, e.g. ['rope', 'rotaryDim']. */
  path: readonly (string | number)[];
  message: string;
}

export type Namer = (irField: string) => string;

export const irNames: Namer = (field) => field;
export const dslNames: Namer = (field) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The model name is shown and used as a file name: blank would be neither. */
export function modelNameIssue(name: string): string | null {
  return name.trim() === '' ? 'the model name must not be empty' : null;
}

export function checkNorm(norm: NormSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  // The DSL's rms() has no bias and layer() no unit offset; rejecting them here keeps every
  // YAML spec expressible in .strata and stops a silently ignored field.
  if (norm.kind === 'rms' && norm.bias) {
    issues.push({ path: ['bias'], message: `${n('bias')} must be false for rms norm` });
  }
  if (norm.kind === 'layer' && norm.unitOffset) {
    issues.push({
      path: ['unitOffset'],
      message: `${n('unitOffset')} must be false for layer norm`,
    });
  }
  return issues;
}

export function checkRope(rope: RopeSpec, headDim: number, n: Namer): Issue[] {
  const issues: Issue[] = [];
  if (rope.rotaryDim % 2 !== 0) {
    issues.push({
      path: ['rotaryDim'],
      message: `${n('rotaryDim')} must be even (rotation acts on pairs), got ${rope.rotaryDim}`,
    });
  }
  if (rope.rotaryDim > headDim) {
    issues.push({
      path: ['rotaryDim'],
      message: `${n('rotaryDim')} (${rope.rotaryDim}) must not exceed ${n('headDim')} (${headDim})`,
    });
  }
  const s = rope.scaling;
  if (s.kind === 'proportional' && s.pairs > rope.rotaryDim / 2) {
    issues.push({
      path: ['scaling', 'pairs'],
      message: `${n('pairs')} (${s.pairs}) must not exceed half of ${n('rotaryDim')} (${rope.rotaryDim / 2})`,
    });
  }
  if (s.kind === 'llama3' && s.highFreqFactor <= s.lowFreqFactor) {
    issues.push({
      path: ['scaling', 'highFreqFactor'],
      message: `${n('highFreqFactor')} (${s.highFreqFactor}) must be greater than ${n('lowFreqFactor')} (${s.lowFreqFactor})`,
    });
  }
  return issues;
}

/** The issue, blamed on `blame`, when `value` (of `field`) is not a multiple of `divisor` (of `by`). */
export function multipleOf(
  n: Namer,
  blame: string,
  [field, value]: [string, number],
  [by, divisor]: [string, number],
): Issue[] {
  if (value % divisor === 0) return [];
  return [
    {
      path: [blame],
      message: `${n(field)} (${value}) must be a multiple of ${n(by)} (${divisor})`,
    },
  ];
}

/** A conv kernel keeps kernel − 1 past steps as state; one tap would leave nothing to carry. */
export function checkKernel(field: string, k: number, n: Namer): Issue[] {
  return k < 2
    ? [
        {
          path: [field],
          message: `${n(field)} must be at least 2 (a causal conv over past steps), got ${k}`,
        },
      ]
    : [];
}

/** The checks of whatever kind a mixer is: its definition's (src/mixers). */
export function checkMixer(m: MixerSpec, n: Namer): Issue[] {
  return mixerDef(m.kind)?.kind.check(m, n) ?? [];
}

export function checkMlp(f: MlpSpec, n: Namer): Issue[] {
  if (f.gateScale !== undefined && !f.gated)
    return [{ path: ['gateScale'], message: `${n('gateScale')} needs a gated mlp` }];
  // Token shift exists only as RWKV's channel mix, the one form rwkv7_cmix(...) prints.
  const cmix = f.act === 'relu2' && !f.gated && !f.bias && f.downScale === undefined;
  if (f.tokenShift && !cmix) {
    const message = `${n('tokenShift')} needs RWKV's channel mix: act relu2, ungated, no bias, no down scale`;
    return [{ path: ['tokenShift'], message }];
  }
  return [];
}

export function checkMoe(f: MoeSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  const r = f.router;
  const at = (path: string[], message: string) => issues.push({ path, message });
  // Experts see routed rows, not a sequence: there is no predecessor to shift in.
  if (f.expert.tokenShift) at(['expert', 'tokenShift'], `${n('tokenShift')} is not for experts`);
  if (f.shared?.tokenShift) at(['shared', 'tokenShift'], `${n('tokenShift')} is not for experts`);
  if (f.topK > f.experts) {
    at(['topK'], `${n('topK')} (${f.topK}) must not exceed ${n('experts')} (${f.experts})`);
  }
  if (r.scoring === 'softmax' && (r.correctionBias || r.groups !== 1 || r.topkGroups !== 1)) {
    const field = r.correctionBias ? 'correctionBias' : 'groups';
    at(['router', field], `${n(field)} needs sigmoid scoring (DeepSeek-V3 routing)`);
  } else if (r.groups > 1) {
    const size = f.experts / r.groups;
    if (!Number.isInteger(size) || size < 2) {
      at(
        ['router', 'groups'],
        `${n('groups')} (${r.groups}) must divide ${n('experts')} (${f.experts}) into groups of at least 2`,
      );
    } else if (r.groups > 32) {
      at(['router', 'groups'], `${n('groups')} of at most 32 are supported, got ${r.groups}`);
    } else if (r.topkGroups > r.groups) {
      at(['router', 'topkGroups'], `${n('topkGroups')} must not exceed ${n('groups')}`);
    } else if (f.topK > size * r.topkGroups) {
      at(['topK'], `${n('topK')} exceeds the experts of the ${r.topkGroups} eligible groups`);
    }
  } else if (r.topkGroups !== 1) {
    at(['router', 'topkGroups'], `${n('topkGroups')} needs ${n('groups')} > 1`);
  }
  if (f.clamp && !(f.expert.gated && f.expert.act === 'silu')) {
    at(['clamp'], 'the clamped SwiGLU needs gated silu experts (swiglu)');
  }
  if (f.sharedGate && !f.shared) at(['sharedGate'], `${n('sharedGate')} needs shared experts`);
  if (f.branchNorms && (!f.shared || f.sharedGate))
    at(
      ['branchNorms'],
      `${n('branchNorms')} needs shared experts (the dense MLP beside the experts) without ${n('sharedGate')}`,
    );
  // The expert kernels have no place for muP multipliers; refuse rather than ignore them.
  for (const [field, mlp] of [
    ['expert', f.expert],
    ['shared', f.shared],
  ] as const) {
    if (mlp && (mlp.gateScale !== undefined || mlp.downScale !== undefined)) {
      const which = mlp.gateScale !== undefined ? 'gateScale' : 'downScale';
      at([field, which], `${n(which)} is not supported in moe experts`);
    }
  }
  return issues;
}

/** Attention options a shared block's lowering does not have (Zamba2 needs none of them). */
export function sharedAttentionIssues(
  a: AttentionSpec,
): { field: keyof AttentionSpec; message: string }[] {
  const unsupported = [
    ['sinks', 'attention sinks'],
    ['qkNorm', 'qk-norm'],
    ['outputGate', 'an attention output gate'],
  ] as const;
  return unsupported
    .filter(([field]) => a[field])
    .map(([field, what]) => ({ field, message: `${what} is not supported in shared blocks yet` }));
}
