/**
 * Semantic checks on a ModelIR that already satisfies the JSON Schema: the rules a schema cannot
 * say. The DSL resolver guarantees these by construction; YAML/JSON specs need them checked.
 */
import { RESERVED_WORDS } from '../../grammar/lexer.ts';
import { attention } from '../mixers/attention.ts';
import {
  checkMixer,
  checkMlp,
  checkMoe,
  checkNorm,
  modelNameIssue,
  sharedAttentionIssues,
  irNames,
  type Issue,
} from './checks.ts';
import { expertsTotalCrossing, expertsTotalMessage } from './limits.ts';
import type { ModelIR } from './model.ts';
import { checkDiffusion, diffusionModelIssues } from './kinds/diffusion.ts';

function within(prefix: readonly (string | number)[], issues: Issue[]): Issue[] {
  return issues.map((i) => ({ path: [...prefix, ...i.path], message: i.message }));
}

/** Every issue, with paths from the model root. */
export function validateModel(model: ModelIR): Issue[] {
  const issues: Issue[] = within(['norm'], checkNorm(model.norm, irNames));
  const nameIssue = modelNameIssue(model.name);
  if (nameIssue) issues.push({ path: ['name'], message: nameIssue });
  const roleOf = new Map<string, 'mixer' | 'ffn' | 'shared block'>();
  const claim = (
    name: string,
    role: 'mixer' | 'ffn' | 'shared block',
    path: (string | number)[],
  ) => {
    if (RESERVED_WORDS.has(name)) {
      issues.push({ path, message: `'${name}' is a reserved word and cannot name a ${role}` });
    }
    const other = roleOf.get(name);
    if (other && other !== role) {
      const [a, b] = ROLES.filter((r) => r === other || r === role);
      issues.push({ path, message: `'${name}' names both ${article(a!)} and ${article(b!)}` });
    }
    roleOf.set(name, role);
  };
  const sharedNames = new Set<string>();
  (model.sharedBlocks ?? []).forEach((b, k) => {
    const at = ['sharedBlocks', k];
    if (sharedNames.has(b.name)) {
      issues.push({ path: [...at, 'name'], message: `shared block '${b.name}' is defined twice` });
    }
    sharedNames.add(b.name);
    claim(b.name, 'shared block', [...at, 'name']);
    issues.push(...within([...at, 'attention'], attention.kind.check(b.attention, irNames)));
    if (!b.ffn.gated || b.ffn.tokenShift) {
      const field = b.ffn.gated ? 'tokenShift' : 'gated';
      issues.push({ path: [...at, 'ffn', field], message: 'a shared block ffn must be gated' });
    }
    for (const { field, message } of sharedAttentionIssues(b.attention)) {
      issues.push({ path: [...at, 'attention', field], message });
    }
  });
  // A definition either is `none` or is a mixer kind, in every layer that uses it.
  const noneMixer = new Map<string, boolean>();
  model.layers.forEach((layer, i) => {
    const at = ['layers', i];
    const none = layer.mixer === null;
    const before = noneMixer.get(layer.mixerName);
    if (before !== undefined && before !== none) {
      issues.push({
        path: [...at, 'mixer'],
        message: `mixer '${layer.mixerName}' is ${before ? 'null' : 'set'} in an earlier layer and ${none ? 'null' : 'set'} here`,
      });
    }
    noneMixer.set(layer.mixerName, none);
    if (layer.index !== i) {
      issues.push({ path: [...at, 'index'], message: `must be ${i}: layers are listed in order` });
    }
    claim(layer.mixerName, 'mixer', [...at, 'mixerName']);
    if (layer.mixer) issues.push(...within([...at, 'mixer'], checkMixer(layer.mixer, irNames)));
    else if (layer.ffn === null) {
      issues.push({ path: [...at, 'mixer'], message: 'a layer without a mixer needs an ffn' });
    }
    if ((layer.ffnName === null) !== (layer.ffn === null)) {
      issues.push({
        path: [...at, 'ffnName'],
        message: 'ffnName and ffn must both be null (no ffn) or both be set',
      });
    }
    if (layer.ffnName !== null) claim(layer.ffnName, 'ffn', [...at, 'ffnName']);
    if (layer.ffn?.kind === 'moe')
      issues.push(...within([...at, 'ffn'], checkMoe(layer.ffn, irNames)));
    else if (layer.ffn) issues.push(...within([...at, 'ffn'], checkMlp(layer.ffn, irNames)));
    if (layer.shared && !sharedNames.has(layer.shared)) {
      issues.push({
        path: [...at, 'shared'],
        message: `no shared block is named '${layer.shared}'`,
      });
    }
    if (layer.shared && !layer.mixer) {
      issues.push({
        path: [...at, 'shared'],
        message: 'a shared block feeds the layer mixer, and this layer has none',
      });
    }
  });
  if (model.diffusion) {
    issues.push(...within(['diffusion'], checkDiffusion(model.diffusion, irNames)));
    issues.push(...diffusionModelIssues(model, irNames));
  }
  const over = expertsTotalCrossing(model.layers);
  if (over) {
    issues.push({
      path: ['layers', over.index, 'ffn', 'experts'],
      message: expertsTotalMessage(over.total),
    });
  }
  return issues;
}

const ROLES = ['mixer', 'ffn', 'shared block'] as const;

function article(noun: string): string {
  return /^([aeiou]|ffn)/.test(noun) ? `an ${noun}` : `a ${noun}`;
}
