/**
 * How strata's canonical tensor names are found in a checkpoint: the name it stores each one
 * under, its stored shape where that differs, and the part of a fused tensor that holds it.
 * The importer makes one from a config; `import -o spec.strata` writes it beside the spec as
 * spec.strata.weights.json, and `compile spec.strata --weights CHECKPOINT` reads the checkpoint
 * through it. One reader serves both (mappedTensorReader).
 */
import type { StoredSlice } from './convert.ts';
import { finishSlice } from './convert.ts';
import { adaLnFoldReader, parseFold, type AdaLnFold } from './adaln-fold.ts';
import type { TensorSource } from './quantized.ts';

export interface WeightMap {
  /** Canonical name → the checkpoint's tensor name. */
  weightMap: Record<string, string>;
  /** Canonical name → the stored shape, where the checkpoint stores the elements differently. */
  storedShapes: Record<string, number[]>;
  /** Canonical name → the part of its stored tensor that holds it (fused checkpoint tensors). */
  storedSlices: Record<string, StoredSlice>;
  /** Canonical name → the constant adaLN modulation folded into it (adaln-fold.ts); absent: none. */
  folds?: Record<string, AdaLnFold>;
  /** Checkpoint tensors that must equal another it reads (HfImport.duplicates); absent: none. */
  duplicates?: Record<string, string>;
}

/** The JSON key of the duplicates (no canonical name starts with '#'). */
const DUPLICATES_KEY = '#duplicates';

/**
 * The map as JSON: a plain checkpoint name, or { tensor, shape?, start?, size?, columns?,
 * transpose?, cumulativeSoftmax? } where the tensor is stored reshaped or is a slice.
 */
export function weightMapJson(m: WeightMap): Record<string, unknown> {
  const json: Record<string, unknown> = Object.fromEntries(
    Object.entries(m.weightMap).map(([canonical, stored]) => {
      const slice = m.storedSlices[canonical];
      const shape = m.storedShapes[canonical];
      const fold = m.folds?.[canonical];
      if (!slice && !shape && !fold) return [canonical, stored];
      return [
        canonical,
        {
          tensor: stored,
          ...(shape ? { shape } : {}),
          ...(slice ?? {}),
          ...(fold ? { adaLN: fold } : {}),
        },
      ];
    }),
  );
  if (m.duplicates && Object.keys(m.duplicates).length) json[DUPLICATES_KEY] = m.duplicates;
  return json;
}

const isInts = (v: unknown): v is number[] =>
  Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);

/** Reads weightMapJson's output back, with errors naming `where` and the entry. */
export function parseWeightMap(json: Record<string, unknown>, where: string): WeightMap {
  const m: WeightMap = { weightMap: {}, storedShapes: {}, storedSlices: {} };
  for (const [canonical, v] of Object.entries(json)) {
    const bad = (why: string) => new Error(`${where}: entry '${canonical}' ${why}`);
    if (canonical === DUPLICATES_KEY) {
      if (
        typeof v !== 'object' ||
        v === null ||
        Array.isArray(v) ||
        !Object.values(v).every((x) => typeof x === 'string')
      )
        throw bad('must map checkpoint tensor names to checkpoint tensor names');
      m.duplicates = { ...(v as Record<string, string>) };
      continue;
    }
    if (typeof v === 'string') {
      m.weightMap[canonical] = v;
      continue;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw bad('must be a tensor name or { tensor, ... }');
    const e = v as Record<string, unknown>;
    if (typeof e.tensor !== 'string') throw bad('has no tensor name');
    m.weightMap[canonical] = e.tensor;
    if (e.shape !== undefined) {
      if (!isInts(e.shape)) throw bad('has a shape that is not a list of sizes');
      m.storedShapes[canonical] = e.shape;
    }
    if (e.adaLN !== undefined) (m.folds ??= {})[canonical] = parseFold(e.adaLN, bad);
    if (e.start === undefined && e.size === undefined) continue;
    if (!isInts(e.start) || !isInts(e.size) || e.start.length !== e.size.length)
      throw bad('needs start and size: lists of the same length');
    const slice: StoredSlice = { start: e.start, size: e.size };
    const cols = e.columns as Record<string, unknown> | undefined;
    if (cols !== undefined) {
      if (!Number.isSafeInteger(cols?.offset) || !Number.isSafeInteger(cols?.stride))
        throw bad('has columns without integer offset and stride');
      slice.columns = { offset: cols.offset as number, stride: cols.stride as number };
    }
    if (e.transpose !== undefined) {
      if (typeof e.transpose !== 'boolean') throw bad('has a transpose that is not true or false');
      slice.transpose = e.transpose;
    }
    const cum = e.cumulativeSoftmax as Record<string, unknown> | undefined;
    if (cum !== undefined) {
      if (!Number.isSafeInteger(cum?.row)) throw bad('has cumulativeSoftmax without a row');
      slice.cumulativeSoftmax = { row: cum.row as number };
    }
    m.storedSlices[canonical] = slice;
  }
  return m;
}

/** Reads a canonical tensor as f32 from `source` through the map (slices cut and finished). */
export function mappedTensorReader(
  source: TensorSource,
  m: WeightMap,
  known: ReadonlySet<string>,
  where: string,
): (canonical: string) => Promise<Float32Array> {
  const folded = m.folds ? adaLnFoldReader(source) : null;
  return (canonical) => {
    if (!known.has(canonical))
      return Promise.reject(new Error(`${where}: the model has no tensor '${canonical}'`));
    const stored = m.weightMap[canonical];
    const fold = m.folds?.[canonical];
    if (fold && folded) return folded(stored, fold, `${where}: tensor '${canonical}'`);
    if (!Object.hasOwn(m.storedSlices, canonical)) return source.readTensorF32(stored);
    const slice = m.storedSlices[canonical];
    return source.readTensorSliceF32(stored, slice).then((box) => finishSlice(stored, box, slice));
  };
}
