/**
 * The contract every op family's CPU reference follows: named arrays in, named
 * arrays out, under the same names as the op's inputs/outputs in src/graph/ops.ts.
 * References are the ground truth for kernel tests and the GraphIR interpreter.
 */
import type { Cost, OpAttrs, StepShape } from '../graph/ops.ts';

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
