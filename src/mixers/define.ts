/**
 * A mixer family in one place: its DSL kind (parameters, defaults, checks, printing), the JSON
 * Schema of its ModelIR form, its line in `strata check`'s table and its block lowering. Weight
 * names and state shapes are not listed anywhere: they are what the lowering declares, read back
 * by running it (layerParams below; `strata inspect` reads state off the lowered graph). Adding a
 * family is this file plus its importer.
 */
import type { Kind } from '../spec/kind.ts';
import type { JsonSchema } from '../spec/schema-parts.ts';
import type { ModelIR } from '../spec/model.ts';
import { GraphBuilder } from '../graph/builder.ts';
import type { ParamSource } from '../graph/ir.ts';

export interface MixerDef<S extends { kind: string }> {
  /** The DSL kind: parameters with their defaults, cross-field checks and printing. */
  kind: Kind<S>;
  /** The JSON Schema of the ModelIR form (the YAML/JSON spec), `kind` included. */
  schema: JsonSchema;
  /** The dimensions column of `strata check`'s table, e.g. "heads 4, key 64, value 128". */
  dims(spec: S): string;
  /**
   * x → x + mixer(norm(input)) for layer `layer`; input is x unless a shared block adds to it.
   * Every weight is a b.param under the layer's prefix and every state a b.state.
   */
  lower(b: GraphBuilder, model: ModelIR, x: number, layer: number, spec: S, input: number): number;
  /**
   * Uniform range for a seeded random weight whose name ends with one of these suffixes, where
   * the generic rule (norms near 1, matrices 1/fan_in) would make a poor model: decay logits, say.
   */
  init?: Record<string, [number, number]>;
  /**
   * What a layer's weights depend on besides its spec, when that is more than nothing (RWKV-7's
   * first layer has no v_lora): layers with equal specs and variants declare equal tensors.
   */
  variant?(model: ModelIR, layer: number): string;
}

export function defineMixer<S extends { kind: string }>(def: MixerDef<S>): MixerDef<S> {
  return def;
}

export interface DeclaredTensor {
  name: string;
  shape: number[];
}

/**
 * Runs a mixer's lowering on a scratch graph (one token) and returns what it declared. The model's
 * sandwich post-norm is the layer's, not the mixer's (src/import/names.ts lists it), so the
 * lowering runs without it.
 */
function record<S extends { kind: string }>(
  def: MixerDef<S>,
  model: ModelIR,
  layer: number,
  spec: S,
): GraphBuilder {
  const b = new GraphBuilder('decode', 1, 1);
  b.scratch = true;
  const x = b.tensor('x', ['T', model.dim], 'input');
  def.lower(b, { ...model, postNorms: false }, x, layer, spec, x);
  return b;
}

/** The checkpoint weights a parameter source reads. */
function weightsRead(source: ParamSource): string[] {
  switch (source.kind) {
    case 'weight':
      return [source.name];
    case 'concat':
      return source.parts.flatMap(weightsRead);
    case 'rope_interleave':
    case 'rows':
    case 'scaled':
    case 'head_rows':
    case 'transposed':
      return weightsRead(source.of);
    case 'rope_table':
    case 'constant':
      return [];
  }
}

/**
 * The canonical weights of one layer's mixer (pre-norm included), as its lowering names them, with
 * their whole shapes, in the order it first reads them. Derived tables (RoPE cos/sin) and
 * constants are computed, not stored, so they are not among them.
 */
export function layerParams<S extends { kind: string }>(
  def: MixerDef<S>,
  model: ModelIR,
  layer: number,
  spec: S,
): DeclaredTensor[] {
  const b = record(def, model, layer, spec);
  for (const t of b.tensors) {
    for (const name of t.kind === 'param' && t.source ? weightsRead(t.source) : []) {
      if (!b.weights.has(name)) {
        throw new Error(
          `internal error: ${def.kind.name} reads weight '${name}' without declaring its shape (GraphBuilder.weight)`,
        );
      }
    }
  }
  return [...b.weights].map(([name, shape]) => ({ name, shape }));
}
