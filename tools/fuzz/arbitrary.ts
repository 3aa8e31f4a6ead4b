/** The one fast-check arbitrary of fuzz inputs: every generator over every input kind. */
import fc from 'fast-check';
import { applyDataEdits, dataEditsArb, toJsonText, toYamlText, type DataEdit } from './gen-data.ts';
import { dslModelArb } from './gen-dsl.ts';
import { applyEdits, textEditsArb, type TextEdit } from './mutate.ts';
import { loadSeeds, type NamedObject, type NamedText } from './seeds.ts';
import type { FuzzInput, InputKind } from './types.ts';

/** Writers can overflow the stack on their own on deeply nested edits; fall back to flat JSON. */
function safely(write: () => string, fallback: () => string): string {
  try {
    return write();
  } catch {
    return fallback();
  }
}

function textMutation(kind: InputKind, seeds: NamedText[], tag: string): fc.Arbitrary<FuzzInput> {
  return fc
    .tuple(fc.nat(seeds.length - 1), textEditsArb)
    .map(([i, edits]: [number, TextEdit[]]) => {
      const seed = seeds[i]!;
      return { kind, text: applyEdits(seed.text, edits), origin: `${tag}:${seed.name}` };
    });
}

function dataMutation(
  kind: InputKind,
  seeds: NamedObject[],
  tag: string,
  write: (v: unknown) => string,
): fc.Arbitrary<FuzzInput> {
  return fc
    .tuple(
      fc.nat(seeds.length - 1),
      dataEditsArb,
      fc.oneof(
        { arbitrary: fc.constant<TextEdit[]>([]), weight: 5 },
        { arbitrary: textEditsArb, weight: 1 },
      ),
    )
    .map(([i, edits, textEdits]: [number, DataEdit[], TextEdit[]]) => {
      const seed = seeds[i]!;
      const tree = applyDataEdits(seed.value, edits);
      const text = safely(
        () => write(tree),
        () => toJsonText(tree, 0),
      );
      return { kind, text: applyEdits(text, textEdits), origin: `${tag}:${seed.name}` };
    });
}

export interface ArbitraryOptions {
  kinds?: readonly InputKind[];
}

export function fuzzInputArb(opts: ArbitraryOptions = {}): fc.Arbitrary<FuzzInput> {
  const s = loadSeeds();
  const want = (k: InputKind) => !opts.kinds || opts.kinds.includes(k);
  const gens: fc.WeightedArbitrary<FuzzInput>[] = [];
  if (want('dsl')) {
    gens.push({ arbitrary: textMutation('dsl', s.dsl, 'mutate-dsl'), weight: 4 });
    gens.push({
      arbitrary: dslModelArb.map((text) => ({ kind: 'dsl' as const, text, origin: 'grammar' })),
      weight: 4,
    });
    gens.push({
      arbitrary: fc.tuple(dslModelArb, textEditsArb).map(([text, edits]) => ({
        kind: 'dsl' as const,
        text: applyEdits(text, edits),
        origin: 'grammar+mutate',
      })),
      weight: 2,
    });
  }
  if (want('yaml')) {
    gens.push({ arbitrary: dataMutation('yaml', s.models, 'modelir-yaml', toYamlText), weight: 2 });
    const yamlTexts = s.data.filter((d) => d.name.endsWith('.yaml'));
    gens.push({ arbitrary: textMutation('yaml', yamlTexts, 'mutate-yaml'), weight: 1 });
  }
  if (want('json')) {
    gens.push({
      arbitrary: dataMutation('json', s.models, 'modelir-json', (v) => toJsonText(v)),
      weight: 2,
    });
    const jsonTexts = s.data.filter((d) => d.name.endsWith('.json'));
    gens.push({ arbitrary: textMutation('json', jsonTexts, 'mutate-json'), weight: 1 });
  }
  if (want('hf')) {
    gens.push({
      arbitrary: dataMutation('hf', s.hf, 'hf-config', (v) => toJsonText(v)),
      weight: 4,
    });
    gens.push({ arbitrary: textMutation('hf', s.hfTexts, 'mutate-hf'), weight: 1 });
  }
  return fc.oneof(...gens);
}
