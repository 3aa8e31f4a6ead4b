/**
 * Cross-field rules on resolved blocks, shared by the DSL resolver and the YAML/JSON loader so a
 * rule is written once. Issues name IR fields; a Namer renders them in the user's vocabulary
 * (kv_heads in .strata, kvHeads in YAML).
 */
import type {
  AttentionSpec,
  GatedDeltaNetSpec,
  Mamba1Spec,
  Mamba2Spec,
  MixerSpec,
  MoeSpec,
  NormSpec,
  RopeSpec,
  ShortConvSpec,
} from './model.ts';

export interface Issue {
  /** IR field path from the checked object, e.g. ['rope', 'rotaryDim']. */
  path: readonly (string | number)[];
  message: string;
}

export type Namer = (irField: string) => string;

export const irNames: Namer = (field) => field;
export const dslNames: Namer = (field) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

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

function checkRope(rope: RopeSpec, headDim: number, n: Namer): Issue[] {
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
  if (s.kind === 'llama3' && s.highFreqFactor <= s.lowFreqFactor) {
    issues.push({
      path: ['scaling', 'highFreqFactor'],
      message: `${n('highFreqFactor')} (${s.highFreqFactor}) must be greater than ${n('lowFreqFactor')} (${s.lowFreqFactor})`,
    });
  }
  return issues;
}

export function checkAttention(a: AttentionSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  if (a.heads % a.kvHeads !== 0) {
    issues.push({
      path: ['kvHeads'],
      message: `${n('heads')} (${a.heads}) must be a multiple of ${n('kvHeads')} (${a.kvHeads})`,
    });
  }
  if (a.rope) {
    for (const issue of checkRope(a.rope, a.headDim, n)) {
      issues.push({ path: ['rope', ...issue.path], message: issue.message });
    }
  }
  return issues;
}

/** A conv kernel keeps kernel − 1 past steps as state; one tap would leave nothing to carry. */
function checkKernel(field: string, k: number, n: Namer): Issue[] {
  return k < 2
    ? [
        {
          path: [field],
          message: `${n(field)} must be at least 2 (a causal conv over past steps), got ${k}`,
        },
      ]
    : [];
}

export function checkMamba1(m: Mamba1Spec, n: Namer): Issue[] {
  return checkKernel('dConv', m.dConv, n);
}

export function checkMamba2(m: Mamba2Spec, n: Namer): Issue[] {
  const issues = checkKernel('dConv', m.dConv, n);
  if (m.heads % m.groups !== 0) {
    issues.push({
      path: ['groups'],
      message: `${n('heads')} (${m.heads}) must be a multiple of ${n('groups')} (${m.groups})`,
    });
  }
  const inner = m.heads * m.headDim;
  if (inner % m.normGroup !== 0) {
    issues.push({
      path: ['normGroup'],
      message: `${n('normGroup')} (${m.normGroup}) must divide ${n('heads')} × ${n('headDim')} (${inner})`,
    });
  }
  if (m.dtMax !== null && m.dtMax < m.dtMin) {
    issues.push({
      path: ['dtMax'],
      message: `${n('dtMax')} (${m.dtMax}) must not be below ${n('dtMin')} (${m.dtMin})`,
    });
  }
  return issues;
}

export function checkShortConv(m: ShortConvSpec, n: Namer): Issue[] {
  return checkKernel('lCache', m.lCache, n);
}

export function checkGatedDeltaNet(m: GatedDeltaNetSpec, n: Namer): Issue[] {
  const issues = checkKernel('dConv', m.dConv, n);
  if (m.valueHeads % m.keyHeads !== 0) {
    issues.push({
      path: ['valueHeads'],
      message: `${n('valueHeads')} (${m.valueHeads}) must be a multiple of ${n('keyHeads')} (${m.keyHeads})`,
    });
  }
  return issues;
}

/** The checks of whatever kind a mixer is. */
export function checkMixer(m: MixerSpec, n: Namer): Issue[] {
  switch (m.kind) {
    case 'attention':
      return checkAttention(m, n);
    case 'mamba1':
      return checkMamba1(m, n);
    case 'mamba2':
      return checkMamba2(m, n);
    case 'shortconv':
      return checkShortConv(m, n);
    case 'gated_deltanet':
      return checkGatedDeltaNet(m, n);
  }
}

export function checkMoe(f: MoeSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  const r = f.router;
  const at = (path: string[], message: string) => issues.push({ path, message });
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
  return issues;
}
