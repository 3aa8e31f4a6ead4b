/**
 * Cross-field rules on resolved blocks, shared by the DSL resolver and the YAML/JSON loader so a
 * rule is written once. Issues name IR fields; a Namer renders them in the user's vocabulary
 * (kv_heads in .strata, kvHeads in YAML).
 */
import type { AttentionSpec, NormSpec, RopeSpec } from './model.ts';

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
