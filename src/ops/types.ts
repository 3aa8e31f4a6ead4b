/**
 * The contract every op family's CPU reference follows: named arrays in, named
 * arrays out, under the same names as the op's inputs/outputs in src/graph/ops.ts.
 * References are the ground truth for kernel tests and the GraphIR interpreter.
 */
import type { Cost, OpAttrs, StepShape } from '../graph/ops.ts';
import type { DType, Dim } from '../graph/ir.ts';

export type HostArray = Float32Array | Uint32Array;
export type Arrays = Record<string, HostArray>;

export interface OpReference<A extends OpAttrs> {
  /**
   * Compute the op for one step. Outputs that update an input in place (KV caches)
   * may return the same (mutated) array.
   */
  reference(a: A, inputs: Arrays, step: StepShape): Arrays;
  /** FLOPs and bytes for one step (weights counted once per step). */
  cost(a: A, step: StepShape): Cost;
}

export function f32(inputs: Arrays, name: string): Float32Array {
  const v = inputs[name];
  if (!(v instanceof Float32Array)) throw new Error(`op input '${name}' must be a Float32Array`);
  return v;
}

export function u32(inputs: Arrays, name: string): Uint32Array {
  const v = inputs[name];
  if (!(v instanceof Uint32Array)) throw new Error(`op input '${name}' must be a Uint32Array`);
  return v;
}

/** One input or output of an op as its definition declares it. */
export interface TensorRule {
  shape: Dim[];
  dtype: DType;
  /** 'read_write' for state updated in place (the output of the same name aliases it). */
  access: 'read' | 'read_write';
}

/**
 * An op family's one definition: the reference and cost plus the named inputs and outputs it
 * takes for given attributes (an optional input is simply absent from the record). Shape checks
 * and kernel bindings read these rules instead of restating them.
 */
export interface OpDefinition<A extends OpAttrs> extends OpReference<A> {
  /** Throws a message naming the attribute when attrs are inconsistent. */
  check(a: A): void;
  inputs(a: A): Record<string, TensorRule>;
  outputs(a: A): Record<string, TensorRule>;
}

export const rule = (shape: Dim[], access: TensorRule['access'] = 'read'): TensorRule => ({
  shape,
  dtype: 'f32',
  access,
});
