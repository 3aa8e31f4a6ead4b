/**
 * ModelIR to readable .strata text that resolves back to the same ModelIR: each distinct block
 * defined once with only its non-default parameters, repeated layers folded into `N x [...]`,
 * ffn schedules in their shortest form, and per-layer differences as overrides.
 */
import { SpecError, type Span } from '../../grammar/diagnostics.ts';
import { formatValue, toAstArgs, type DslArg, type DslCall, type DslValue } from './dsl-value.ts';
import { deepEqual } from './equal.ts';
import type { Env, Family, Kind, KindContext } from './kind.ts';
import { FFNS, MIXERS } from './kinds/index.ts';
import { SHARED_BLOCKS } from './kinds/shared.ts';
import { assertModel } from './load-data.ts';
import { parseSpec } from './load.ts';
import type { LayerSpec, MixerSpec, ModelIR } from './model.ts';
import { NO_MIXER } from './resolve.ts';
import { modelSettings, settingsOf } from './settings.ts';

const WIDTH = 100;
const NOWHERE: Span = { file: '<printed>', line: 1, col: 1, offset: 0, length: 0 };

function env(ctx: KindContext): Env {
  return {
    ctx,
    fail: (message) => {
      throw new SpecError(message, NOWHERE);
    },
  };
}

function isCall(v: DslValue): v is DslCall {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'kind' in v;
}

/** Whether args, resolved with kind, give exactly spec. */
function rebuilds<T>(kind: Kind<T>, args: readonly DslArg[], spec: T, ctx: KindContext): boolean {
  try {
    return deepEqual(kind.resolve(toAstArgs(args), NOWHERE, env(ctx)), spec);
  } catch (e) {
    if (e instanceof SpecError) return false;
    throw e;
  }
}

/** Drops every argument (nested ones too) whose default already gives the same spec. */
function minimize<T>(kind: Kind<T>, full: DslArg[], spec: T, ctx: KindContext): DslArg[] {
  const args = [...full];
  const holds = () => rebuilds(kind, args, spec, ctx);
  const prune = (list: DslArg[]) => {
    for (const arg of [...list]) {
      const at = list.indexOf(arg);
      list.splice(at, 1);
      if (!holds()) list.splice(at, 0, arg);
    }
    for (const arg of list) if (isCall(arg.value)) prune(arg.value.args);
  };
  prune(args);
  return args;
}

/** A value at the given indentation, wrapped one argument per line when it would not fit. */
function render(v: DslValue, indent: string, used: number): string {
  const flat = formatValue(v);
  if (used + flat.length <= WIDTH || !isCall(v) || v.args.length === 0) return flat;
  const inner = `${indent}  `;
  const lines = v.args.map((a) => {
    const head = `${inner}${a.name}: `;
    return `${head}${render(a.value, inner, head.length + 1)},`;
  });
  return `${v.kind}(\n${lines.join('\n')}\n${indent})`;
}

function indexList(indices: number[]): string {
  return indices.length === 1 ? String(indices[0]) : `[${indices.join(', ')}]`;
}

function shortest(candidates: string[]): string {
  return candidates.reduce((best, c) => (c.length < best.length ? c : best));
}

function smallestPeriod<T>(xs: readonly T[], mustDivide: boolean): number {
  for (let p = 1; p < xs.length; p++) {
    if (mustDivide && xs.length % p !== 0) continue;
    if (xs.every((x, i) => x === xs[i % p])) return p;
  }
  return xs.length;
}

/** Names in order of first use, the most frequent first among ties broken by that order. */
function byFrequency<T>(xs: readonly T[]): T[] {
  const counts = new Map<T, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts.keys()].sort((a, b) => counts.get(b)! - counts.get(a)!);
}

function placements<T extends string | null>(xs: readonly T[], base: T): string {
  const others = [...new Set(xs)].filter((x) => x !== base);
  return others
    .map((o) => {
      const at = xs.flatMap((x, i) => (x === o ? [i] : []));
      return `, ${o ?? 'none'} at ${indexList(at)}`;
    })
    .join('');
}

/** `[3 local : 1 attn]`, `[7 mamba : 1 attn at 4]` or `[a, b, a]`. */
function groupText(unit: readonly string[]): string {
  const runs: { name: string; count: number; start: number }[] = [];
  unit.forEach((name, i) => {
    const last = runs.at(-1);
    if (last && last.name === name) last.count++;
    else runs.push({ name, count: 1, start: i });
  });
  const names = [...new Set(unit)];
  const sequence = `[${unit.join(', ')}]`;
  if (runs.length === names.length) {
    return runs.some((r) => r.count > 1)
      ? `[${runs.map((r) => `${r.count} ${r.name}`).join(' : ')}]`
      : sequence;
  }
  if (names.length === 2) {
    // One name in a single run, placed with `at`; the other fills the rest of the group.
    const placed = names.find((n) => runs.filter((r) => r.name === n).length === 1);
    if (placed) {
      const run = runs.find((r) => r.name === placed)!;
      const other = names.find((n) => n !== placed)!;
      const ratio = `[${unit.length - run.count} ${other} : ${run.count} ${placed} at ${run.start}]`;
      return ratio.length < sequence.length ? ratio : sequence;
    }
  }
  return sequence;
}

/** Index lists read worse than groups of the same length: they hide the structure. */
const PLACEMENT_PENALTY = 1.5;

interface Candidate {
  text: string;
  cost: number;
}

function mixerPattern(mixers: readonly string[]): Candidate {
  const n = mixers.length;
  const p = smallestPeriod(mixers, true);
  const unit = mixers.slice(0, p);
  const folded = `${n / p} x ${p === 1 ? unit[0] : groupText(unit)}`;
  const candidates: Candidate[] = [{ text: folded, cost: folded.length }];
  if (p > 1) {
    const base = byFrequency(mixers)[0]!;
    const placed = `${n} x ${base}${placements(mixers, base)}`;
    candidates.push({ text: placed, cost: placed.length * PLACEMENT_PENALTY });
  }
  return candidates.reduce((best, c) => (c.cost < best.cost ? c : best));
}

function ffnSchedule(ffns: readonly (string | null)[], anyFfnDefined: boolean): string {
  const name = (f: string | null) => f ?? 'none';
  const distinct = [...new Set(ffns)];
  if (distinct.length === 1) {
    return distinct[0] === null && !anyFfnDefined ? '' : ` with ffn ${name(distinct[0]!)}`;
  }
  const candidates: string[] = [];
  const q = smallestPeriod(ffns, false);
  candidates.push(` with ffn [${ffns.slice(0, q).map(name).join(', ')}]`);
  const k = ffns.findIndex((f) => f !== ffns[0]);
  if (ffns.slice(k).every((f) => f === ffns[k])) {
    candidates.push(` with ffn ${name(ffns[k]!)}, first ${k} ${name(ffns[0]!)}`);
  }
  const base = byFrequency(ffns)[0]!;
  candidates.push(` with ffn ${name(base)}${placements(ffns, base)}`);
  return shortest(candidates);
}

function layersText(layers: readonly LayerSpec[], anyFfnDefined: boolean): string[] {
  const statement = (from: number, to: number): Candidate => {
    const slice = layers.slice(from, to);
    const mixers = mixerPattern(slice.map((l) => l.mixerName));
    const ffns = ffnSchedule(
      slice.map((l) => l.ffnName),
      anyFfnDefined,
    );
    return { text: `  layers ${mixers.text}${ffns}`, cost: mixers.cost + ffns.length };
  };
  const options: Candidate[][] = [[statement(0, layers.length)]];
  // A repeated pattern with a partial tail (26 layers of [5 local : 1 global]) reads best as
  // the whole groups followed by the rest.
  const names = layers.map((l) => l.mixerName);
  const p = smallestPeriod(names, false);
  const whole = Math.floor(names.length / p) * p;
  if (p > 1 && whole < names.length && whole > 0) {
    options.push([statement(0, whole), statement(whole, names.length)]);
  }
  const cost = (o: Candidate[]) => o.reduce((sum, c) => sum + c.cost, 0);
  return options.reduce((best, o) => (cost(o) < cost(best) ? o : best)).map((c) => c.text);
}

interface BlockPlan<T> {
  name: string;
  role: 'mixer' | 'ffn' | 'shared';
  kind: Kind<T>;
  spec: T;
  args: DslArg[];
}

/** Sorted keys make equal specs equal strings, whatever order a YAML file wrote them in. */
function stableKey(v: unknown): string {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stableKey).join(',')}]`;
  const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableKey(x)}`).join(',')}}`;
}

/** The most frequent of specs, the earliest among ties. */
function mostCommon<T>(specs: readonly T[]): T {
  const keys = specs.map(stableKey);
  const top = byFrequency(keys)[0]!;
  return specs[keys.indexOf(top)]!;
}

/** The definition printed for a name: its most common spec, with a kind every use can take. */
function planBlock<T>(
  name: string,
  role: 'mixer' | 'ffn',
  specs: T[],
  family: Family<T>,
  ctx: KindContext,
): BlockPlan<T> {
  const spec = mostCommon(specs);
  const kind = family.kinds.find((k) => specs.every((s) => k.toArgs(s) !== null));
  if (!kind) throw new Error(`no ${family.noun} kind expresses every use of '${name}'`);
  return { name, role, kind, spec, args: minimize(kind, kind.toArgs(spec)!, spec, ctx) };
}

/** `attn.window: 128` entries that turn the definition into this layer's spec. */
function overrideEntries<T>(plan: BlockPlan<T>, spec: T, ctx: KindContext): string[] {
  if (deepEqual(spec, plan.spec)) return [];
  const mine = plan.kind.toArgs(spec)!;
  const theirs = plan.kind.toArgs(plan.spec)!;
  const diff = mine.filter(
    (a) => !deepEqual(a.value, theirs.find((b) => b.name === a.name)?.value),
  );
  const merged = (entries: DslArg[]) => [
    ...plan.args.filter((a) => !entries.some((e) => e.name === a.name)),
    ...entries,
  ];
  // A diff can miss a default that depended on a changed parameter; all arguments never do.
  const entries = rebuilds(plan.kind, merged(diff), spec, ctx) ? diff : mine;
  return entries.map((e) => `${plan.name}.${e.name}: ${formatValue(e.value)}`);
}

function plans<T>(
  layers: readonly LayerSpec[],
  pick: (l: LayerSpec) => { name: string; spec: T } | null,
  role: 'mixer' | 'ffn',
  family: Family<T>,
  ctx: KindContext,
): Map<string, BlockPlan<T>> {
  const byName = new Map<string, T[]>();
  for (const l of layers) {
    const use = pick(l);
    if (use) byName.set(use.name, [...(byName.get(use.name) ?? []), use.spec]);
  }
  return new Map(
    [...byName].map(([name, specs]) => [name, planBlock(name, role, specs, family, ctx)]),
  );
}

function definitionLines(all: BlockPlan<unknown>[]): string[] {
  const width = Math.max(...all.map((p) => p.name.length));
  const roleWidth = Math.max(5, ...all.map((p) => p.role.length));
  return all.map((p) => {
    const head = `  ${p.role.padEnd(roleWidth)} ${p.name.padEnd(width)} = `;
    return head + render({ kind: p.kind.name, args: p.args }, '  ', head.length);
  });
}

function printUnchecked(model: ModelIR): string {
  const ctx: KindContext = { dim: model.dim };
  const settings = settingsOf(model);
  const settingArgs = minimize(modelSettings, modelSettings.toArgs(settings)!, settings, ctx);
  const out = [`model ${JSON.stringify(model.name)} {`];
  for (const a of settingArgs) {
    const head = `  ${a.name} `;
    out.push(head + render(a.value, '  ', head.length));
  }

  const mixers: Map<string, BlockPlan<MixerSpec | null>> = plans(
    model.layers,
    (l) => (l.mixer ? { name: l.mixerName, spec: l.mixer } : null),
    'mixer',
    MIXERS,
    ctx,
  );
  // Layers without a mixer use a `mixer NAME = none` definition (printed as the bare kind none).
  for (const l of model.layers) {
    if (l.mixer === null && !mixers.has(l.mixerName)) {
      mixers.set(l.mixerName, {
        name: l.mixerName,
        role: 'mixer',
        kind: NO_MIXER,
        spec: null,
        args: [],
      });
    }
  }
  const ffns = plans(
    model.layers,
    (l) => (l.ffnName !== null && l.ffn ? { name: l.ffnName, spec: l.ffn } : null),
    'ffn',
    FFNS,
    ctx,
  );
  const shared: BlockPlan<unknown>[] = (model.sharedBlocks ?? []).map((b) => {
    const { name, ...spec } = b;
    const kind = SHARED_BLOCKS.kinds[0]!;
    return {
      name,
      role: 'shared',
      kind,
      spec,
      args: minimize(kind, kind.toArgs(spec)!, spec, ctx),
    };
  });
  out.push(
    '',
    ...definitionLines([...mixers.values(), ...ffns.values(), ...shared] as BlockPlan<unknown>[]),
  );
  out.push('', ...layersText(model.layers, ffns.size > 0));

  const bodies = new Map<string, number[]>();
  for (const l of model.layers) {
    const entries = l.shared ? [`shared: ${l.shared}`] : [];
    entries.push(...overrideEntries(mixers.get(l.mixerName)!, l.mixer, ctx));
    if (l.ffnName !== null && l.ffn)
      entries.push(...overrideEntries(ffns.get(l.ffnName)!, l.ffn, ctx));
    if (entries.length) {
      const body = entries.join(', ');
      bodies.set(body, [...(bodies.get(body) ?? []), l.index]);
    }
  }
  for (const [body, at] of bodies) {
    out.push(
      `  override ${at.length === 1 ? `layer ${at[0]}` : `layers ${indexList(at)}`} { ${body} }`,
    );
  }
  out.push('}', '');
  return out.join('\n');
}

/**
 * A .strata text for the model. The text is resolved again before it is returned, so a printer
 * bug surfaces here rather than as a spec that silently describes another model.
 */
export function printSpec(model: ModelIR): string {
  assertModel(model, `model '${model.name}'`);
  const text = printUnchecked(model);
  const back = parseSpec(text, `${model.name}.strata`);
  if (!deepEqual(back, model)) {
    throw new Error(
      `printSpec: the printed spec of '${model.name}' does not resolve to the same model`,
    );
  }
  return text;
}
