/** A per-layer table of a model, for `strata check`. */
import { toDslCall } from './kind.ts';
import { FFNS } from './kinds/index.ts';
import type { FfnSpec, MixerSpec, ModelIR } from './model.ts';
import { mixerDef } from '../mixers/lookup.ts';

/** The mixer's dimensions column, as its kind's definition (src/mixers) writes it. */
function mixerDims(m: MixerSpec): string {
  const def = mixerDef(m.kind);
  if (!def) throw new Error(`no table line for mixer kind '${m.kind}'`);
  return def.dims(m);
}

/** swiglu / geglu, or mlp(act) for the general form. */
function ffnKind(f: FfnSpec): string {
  if (f.kind === 'moe')
    return `moe(${f.experts} experts, top ${f.topK}${f.shared ? ', shared' : ''})`;
  const kind = toDslCall(FFNS, f).kind.name;
  return kind === 'mlp' ? `mlp(${f.act}${f.gated ? ', gated' : ''})` : kind;
}

function formatTable(header: string[], rows: string[][], rightAligned: Set<number>): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/**
 * One row per layer: index, mixer name, kind and dimensions, ffn name, kind and hidden size, and
 * (only in models that have shared blocks) the shared block each layer runs.
 */
export function layerTable(model: ModelIR): string {
  const withShared = (model.sharedBlocks ?? []).length > 0;
  const header = [
    'layer',
    ...(withShared ? ['shared'] : []),
    'mixer',
    'kind',
    'dims',
    'ffn',
    'kind',
    'hidden',
  ];
  const rows = model.layers.map((l) => [
    String(l.index),
    ...(withShared ? [l.shared ?? '-'] : []),
    l.mixerName,
    l.mixer ? l.mixer.kind : 'none',
    l.mixer ? mixerDims(l.mixer) : '-',
    l.ffnName ?? '-',
    l.ffn ? ffnKind(l.ffn) : '-',
    l.ffn ? String(l.ffn.kind === 'moe' ? l.ffn.expert.hidden : l.ffn.hidden) : '-',
  ]);
  return formatTable(header, rows, new Set([0, header.length - 1]));
}
