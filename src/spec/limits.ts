/**
 * The one table of size caps. Every size that scales the compiler's work (the layer list, the
 * tensor list, parameter counts) has a cap here, and the DSL resolver, the YAML/JSON loader (the
 * JSON Schema's `maximum`s come from this table) and the HuggingFace importer all check against
 * it, so a hostile or mistyped spec fails fast with a located error instead of hanging or running
 * out of memory.
 *
 * Each cap is several times the largest released model's value (noted beside it) so no real model
 * comes near one; the caps bound work, they are not a statement about what is sensible.
 */
import { SpecError, spanAt } from '../../grammar/diagnostics.ts';
import type { Issue, Namer } from './checks.ts';
import type { LayerSpec } from './model.ts';

/** Caps on IR integer fields, by field name (the same name in every block that has it). */
export const FIELD_CAPS: Readonly<Record<string, number>> = {
  // ~262k (Gemma 3); byte-level and multilingual vocabularies stay far below 1M.
  vocab: 1 << 20,
  // 16384 (Llama 3.1 405B).
  dim: 65536,
  // Widths derived from dim: ffn hidden (53248 in Llama 3.1 405B), Mamba's inner width, MLA ranks.
  hidden: 1 << 18,
  dInner: 1 << 18,
  dtRank: 65536,
  qRank: 65536,
  kvRank: 65536,
  adapterRank: 65536,
  // GLA's low-rank key gate (16 in fla); RWKV-7's low-rank paths (256 in its 1.5B and 2.9B).
  decayRank: 65536,
  aRank: 65536,
  vRank: 65536,
  gateRank: 65536,
  normGroup: 1 << 18,
  // 128 query heads at most in released models; Mamba-2 uses ~128 heads too.
  heads: 1024,
  kvHeads: 1024,
  keyHeads: 1024,
  valueHeads: 1024,
  groups: 1024,
  // Per-head widths: 256 (Gemma) and 512 are the largest in use.
  headDim: 4096,
  keyHeadDim: 4096,
  valueHeadDim: 4096,
  vHeadDim: 4096,
  nopeDim: 4096,
  ropeDim: 4096,
  rotaryDim: 4096,
  // SSM state: 256 (Falcon-H1) at most; the scan chunk is 256.
  dState: 4096,
  chunk: 4096,
  // Causal conv widths are 3 or 4.
  dConv: 64,
  lCache: 64,
  // 10M tokens (Llama 4 Scout) is the longest advertised context.
  maxContext: 1 << 24,
  window: 1 << 24,
  // H2O eviction: bounded like the window it stands for.
  budget: 1 << 24,
  recent: 1 << 24,
  originalMaxPositions: 1 << 24,
  // 384 routed experts (Kimi K2); top-k and group counts are bounded by the experts.
  experts: 4096,
  topK: 4096,
  topkGroups: 4096,
  // Layer positions are bounded by the layer count.
  index: 4096,
};

/** 128 layers is the deepest released model; also caps every repeat count and pattern length. */
export const MAX_LAYERS = 4096;

/**
 * Routed experts summed over all layers: the tensor list holds three tensors per expert per layer
 * (DeepSeek-V3 has 58 × 256 ≈ 15k, Kimi K2 61 × 384 ≈ 23k). 24Ki keeps both, and keeps a
 * checked import at the caps (4096 layers, ~10^5 tensors) near a second: at 32Ki a 4096-layer
 * Jamba config took over 2 s in the 1M-input fuzz run.
 */
export const MAX_EXPERTS_TOTAL = 24576;

/**
 * The longest spec text, in UTF-16 units, by format: parse time grows with the text, and these
 * keep the slowest parser (YAML) near a second. Hand-written specs are a few kilobytes; a
 * written-out 4096-layer ModelIR is about 2.5 MB of indented JSON.
 */
export const MAX_TEXT: Readonly<Record<'strata' | 'yaml' | 'json' | 'config', number>> = {
  strata: 1 << 20,
  // The yaml library parses about half a megabyte a second here: 512 Ki characters (a few
  // thousand written-out layers) keeps a rejection well inside the fuzzer's 2 s; larger
  // written-out models belong in JSON, which is scanned linearly.
  yaml: 1 << 19,
  json: 1 << 24,
  // A HuggingFace config.json is a few kilobytes.
  config: 1 << 20,
};

/** The located error for a text over its format's cap; null when it is within it. */
export function textSizeError(
  text: string,
  file: string,
  format: keyof typeof MAX_TEXT,
): SpecError | null {
  const cap = MAX_TEXT[format];
  if (text.length <= cap) return null;
  // Point where the text passes the cap, so the message still has a line and column.
  return new SpecError(
    `the text is ${text.length} characters long, over the limit of ${cap}`,
    spanAt(file, text, cap, 1),
    text,
  );
}

/**
 * Values (numbers, strings, objects, ...) a YAML spec may expand to through its aliases: a full
 * 4096-layer ModelIR holds about 200k.
 */
export const MAX_DATA_VALUES = 1 << 21;

/** Brackets, and YAML/JSON collections, nested deeper than this are refused before parsing. */
export { MAX_NESTING } from '../../grammar/diagnostics.ts';

/** Caps on the ModelIR's top-level lists: one shared block per layer at most is of any use. */
export const LIST_CAPS: Readonly<Record<string, number>> = {
  layers: MAX_LAYERS,
  sharedBlocks: MAX_LAYERS,
};

/** The message for a list over its cap. */
export function listOverCap(field: string, count: number, cap: number): string {
  return field === 'layers' ? tooManyLayers(count) : `${count} ${field} exceed the limit of ${cap}`;
}

/** The cap on an IR field, or undefined when it has none. */
export function fieldCap(field: string): number | undefined {
  return Object.hasOwn(FIELD_CAPS, field) ? FIELD_CAPS[field] : undefined;
}

/** The message for a value over its cap; `what` is the field as the user spells it. */
export function overCap(what: string, value: number, cap: number): string {
  return `${what} (${value}) exceeds the limit of ${cap}`;
}

/** The layer at which the routed experts summed over layers pass their cap, or null. */
export function expertsTotalCrossing(
  layers: readonly LayerSpec[],
): { index: number; total: number } | null {
  let total = 0;
  for (let index = 0; index < layers.length; index++) {
    const ffn = layers[index]!.ffn;
    if (ffn?.kind !== 'moe') continue;
    total += ffn.experts;
    if (total > MAX_EXPERTS_TOTAL) return { index, total };
  }
  return null;
}

/** The message for too many routed experts over all layers. */
export function expertsTotalMessage(total: number): string {
  return `${total} routed experts over all layers exceed the limit of ${MAX_EXPERTS_TOTAL}`;
}

/** The message for too many layers. */
export function tooManyLayers(count: number): string {
  return `${count} layers exceed the limit of ${MAX_LAYERS}`;
}

/**
 * Every capped integer field over its cap in a resolved block or model, with its path. Walks
 * plain objects and arrays; field names come from the IR, so a Namer renders them for the user.
 */
export function capIssues(value: unknown, n: Namer): Issue[] {
  const issues: Issue[] = [];
  const walk = (v: unknown, path: (string | number)[], depth: number): void => {
    // IR objects nest a few levels; the depth guard only keeps a cyclic input from looping.
    if (typeof v !== 'object' || v === null || depth > 16) return;
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, [...path, i], depth + 1));
      return;
    }
    for (const [key, item] of Object.entries(v)) {
      const cap = fieldCap(key);
      if (cap !== undefined && typeof item === 'number' && item > cap) {
        issues.push({ path: [...path, key], message: overCap(n(key), item, cap) });
      } else walk(item, [...path, key], depth + 1);
    }
  };
  walk(value, [], 0);
  return issues;
}
