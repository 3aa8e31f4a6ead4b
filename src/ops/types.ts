/**
 * The contract every op family follows: an OpDefinition (checks, named inputs and outputs with
 * shape rules, CPU reference, cost). A reference takes named arrays and returns named arrays under
 * the names its definition declares. References are the ground truth for kernel tests and the
 * GraphIR interpreter.
 */
import type { Cost, OpAttrs, StepShape } from '../graph/ops.ts';
import type { DType, Dim } from '../graph/ir.ts';

export type HostArray = Float32Array | Uint32Array;
export type Arrays = Record<string, HostArray>;

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
  /**
   * 'read_write' on an input: state updated in place, and the output of the same name (declared
   * 'read_write' too) is that same tensor. Outputs without an input of their name are 'read'.
   */
  access: 'read' | 'read_write';
}

/**
 * An op family's one definition: its checks, the named inputs and outputs it takes for given
 * attributes (an optional input is simply absent from the record), the CPU reference and the
 * cost. Shape checks, in-place outputs and kernel bindings read these rules instead of restating
 * them.
 */
export interface OpDefinition<A extends OpAttrs> {
  /** Throws a message naming the attribute when attrs are inconsistent. */
  check(a: A): void;
  /** Inputs in binding order. */
  inputs(a: A): Record<string, TensorRule>;
  outputs(a: A): Record<string, TensorRule>;
  /**
   * Compute the op for one step: the declared inputs in, the declared outputs out. Outputs that
   * update an input in place (KV caches) may return the same (mutated) array.
   */
  reference(a: A, inputs: Arrays, step: StepShape): Arrays;
  /** FLOPs and bytes for one step (weights counted once per step). */
  cost(a: A, step: StepShape): Cost;
}

export const rule = (
  shape: Dim[],
  access: TensorRule['access'] = 'read',
  dtype: DType = 'f32',
): TensorRule => ({ shape, dtype, access });

/** Updated in place (recurrent state, caches): an input and the output of the same name. */
export const inPlace = (shape: Dim[], dtype: DType = 'f32'): TensorRule =>
  rule(shape, 'read_write', dtype);

/** A u32 tensor that is not updated in place (token and expert ids, counts, schedules). */
export const indices = (shape: Dim[]): TensorRule => rule(shape, 'read', 'u32');

/**
 * Storage buffers a kernel of this op binds: its inputs, and the outputs that are not also inputs
 * (state updated in place is one binding).
 */
export function bindingCount<A extends OpAttrs>(def: OpDefinition<A>, a: A): number {
  const inputs = def.inputs(a);
  return (
    Object.keys(inputs).length +
    Object.keys(def.outputs(a)).filter((n) => !Object.hasOwn(inputs, n)).length
  );
}
