/**
 * Checks a checkpoint's tensor list against what a model needs: every expected tensor
 * present with the right shape and a float dtype, and nothing left over (a leftover
 * tensor means the config and the weights describe different models).
 */
import type { TensorSource } from './quantized.ts';
import { sliceSpan } from '../../formats/tensor-slice.ts';
import { sliceYields, type StoredSlice } from './convert.ts';
import type { TensorSpec } from './names.ts';
import { checkFold, type AdaLnFold } from './adaln-fold.ts';
import { FP8_LABEL, MXFP4_LABEL } from './quantized.ts';

export interface AvailableTensor {
  name: string;
  shape: number[];
  dtype: string;
}

/** Stored floats, and the quantised tensors quantized.ts presents dequantised. */
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', MXFP4_LABEL, FP8_LABEL]);

/**
 * Buffers some old checkpoints carry that are recomputed from the config, never loaded; and
 * BD3-LM's sampling_eps_min/max, the noise interval its training clipped to (no inference use).
 */
const DERIVED_BUFFER = /\.rotary_emb\.inv_freq$|^sampling_eps_m(in|ax)$/;

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** How a slice's post-step reads in a message ('' where it has none). */
function postStep(s: StoredSlice): string {
  const cols = s.columns ? ` columns ${s.columns.offset}::${s.columns.stride}` : '';
  const softmax = s.cumulativeSoftmax ? ` cumulative softmax row ${s.cumulativeSoftmax.row}` : '';
  return cols + (s.transpose ? ' transposed' : '') + softmax;
}

export function checkTensors(
  expected: readonly TensorSpec[],
  weightMap: Readonly<Record<string, string>>,
  available: readonly AvailableTensor[],
  source: string,
  hint?: (unused: string[]) => string,
  /** Canonical name → the checkpoint's shape where it stores the same elements differently. */
  storedShapes: Readonly<Record<string, readonly number[]>> = {},
  /** Canonical name → the part of its stored tensor that holds it (fused checkpoint tensors). */
  storedSlices: Readonly<Record<string, StoredSlice>> = {},
  /** Canonical name → the constant adaLN modulation folded into it (adaln-fold.ts). */
  folds: Readonly<Record<string, AdaLnFold>> = {},
): void {
  const byName = new Map(available.map((t) => [t.name, t]));
  const problems: string[] = [];
  const used = new Set<string>();
  for (const t of expected) {
    const hfName = weightMap[t.name];
    if (hfName === undefined) {
      problems.push(`no checkpoint name is mapped for '${t.name}'`);
      continue;
    }
    used.add(hfName);
    const label = hfName === t.name ? `'${t.name}'` : `'${hfName}' (strata '${t.name}')`;
    const got = byName.get(hfName);
    if (!got) {
      problems.push(`missing tensor ${label}, expected shape ${fmt(t.shape)}`);
    } else if (fmt(got.shape) !== fmt(storedShapes[t.name] ?? t.shape)) {
      const want = fmt(storedShapes[t.name] ?? t.shape);
      problems.push(`tensor ${label} has shape ${fmt(got.shape)}, expected ${want}`);
    } else if (!FLOAT_DTYPES.has(got.dtype)) {
      problems.push(`tensor ${label} has dtype ${got.dtype}, expected F32, F16 or BF16`);
    } else if (Object.hasOwn(storedSlices, t.name)) {
      const s = storedSlices[t.name];
      try {
        sliceSpan(hfName, got.shape, s);
        if (!sliceYields(hfName, s, t.shape)) {
          problems.push(
            `slice size ${fmt(s.size)}${postStep(s)} of tensor '${hfName}' does not hold strata '${t.name}' ${fmt(t.shape)}`,
          );
        }
      } catch (e) {
        problems.push(`${(e as Error).message} (strata '${t.name}')`);
      }
    }
    if (got && Object.hasOwn(folds, t.name))
      problems.push(...checkFold(t.name, t.shape, folds[t.name], byName, used));
  }
  if (problems.length > 0) {
    throw new Error(`${source}: checkpoint does not match the config:\n  ${problems.join('\n  ')}`);
  }
  const unused = available
    .map((t) => t.name)
    .filter((n) => !used.has(n) && !DERIVED_BUFFER.test(n))
    .sort();
  if (unused.length > 0) {
    const extra = hint ? hint(unused) : '';
    throw new Error(
      `${source}: ${unused.length} checkpoint tensor${unused.length > 1 ? 's are' : ' is'} not used by the model${extra}: ${unused.map((n) => `'${n}'`).join(', ')}`,
    );
  }
}

/**
 * Each duplicate (HfImport.duplicates) equals the tensor strata reads in its place: strata runs
 * one copy, so a checkpoint whose copies differ is refused, naming both and their values.
 */
export async function checkDuplicates(
  source: TensorSource,
  duplicates: Record<string, string>,
  dir: string,
): Promise<void> {
  const present = new Set(source.listTensors().map((t) => t.name));
  for (const [copy, read] of Object.entries(duplicates)) {
    if (!present.has(copy) || !present.has(read)) continue;
    const [a, b] = [await source.readTensorF32(copy), await source.readTensorF32(read)];
    const at = a.findIndex((v, i) => v !== b[i]);
    if (a.length !== b.length || at >= 0)
      throw new Error(
        `${dir}: checkpoint tensor '${copy}' differs from '${read}'${at >= 0 ? ` (element ${at}: ${a[at]} vs ${b[at]})` : ''}: strata runs one copy of them`,
      );
  }
}
