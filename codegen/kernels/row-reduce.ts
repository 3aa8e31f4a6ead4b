/**
 * The per-row kernels' common WGSL (softmax_rows, entropy_rows, the diffusion pick): one
 * workgroup a logits row of V ids, each thread walking ids tid, tid + WG, … (ascending, so a
 * strict > keeps the lowest id of equal values) into a slot of workgroup arrays, then a halving
 * tree merging the slots into slot 0. Written once here so the three kernels' workgroup size,
 * tie rule and tree cannot drift apart.
 */

/** The largest power of two up to the device's workgroup size (256 at most) that vocab can use. */
export function rowWorkgroup(vocab: number, maxWorkgroup: number): number {
  let wg = 1;
  while (wg * 2 <= Math.min(maxWorkgroup, 256) && wg < vocab) wg *= 2;
  return wg;
}

/** The names the snippets below declare, for opBindings' reserved list. */
export const ROW_NAMES = ['V', 'WG', 'NONE', 'better', 'is_nonfinite', 'main'] as const;

/**
 * WGSL constants V (vocab), WG (threads, a power of two) and NONE (the id no thread saw; an
 * id no row has, since vocab < 2^32 − 1).
 */
export function rowConstants(vocab: number, wg: number): string {
  return `const V = ${vocab}u;
const WG = ${wg}u;
const NONE = 0xffffffffu;`;
}

/**
 * WGSL better(s, i, sBest, iBest): whether (s, i) beats (sBest, iBest), a higher value or an
 * equal one at a lower id (torch.argmax's tie rule), NONE losing to every id. Needs NONE.
 */
export const BETTER_WGSL = `// Whether (s, i) beats (sBest, iBest): a higher value, or an equal one at a lower id.
fn better(s: f32, i: u32, sBest: f32, iBest: u32) -> bool {
  return i != NONE && (iBest == NONE || s > sBest || (s == sBest && i < iBest));
}`;

/**
 * The entry point's opening: one workgroup a row, rows past step.T return at once (a uniform
 * test: the whole workgroup leaves), `row` its row and `base` the row's first logit. The caller
 * writes the body and the closing brace.
 */
export function rowMain(wg: number): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row = wid.x;
  if (row >= step.T) { return; }
  let base = row * V;`;
}

/**
 * A halving tree over the workgroup's slots: a barrier publishes every thread's slot, then for
 * o = WG/2, WG/4, …, 1 each thread tid < o merges slot j = tid + o into its own by `merge`
 * (WGSL statements on slots tid and j, one a line), a barrier after each level, so slot 0 holds
 * the row's result, visible to every thread. `indent`: the indentation the loop stands at.
 */
export function treeReduce(merge: string, indent = '  '): string {
  const lines = merge.split('\n').filter((line) => line.trim() !== '');
  // Statements keep their nesting relative to the least indented one.
  const least = Math.min(...lines.map((line) => line.length - line.trimStart().length));
  const body = lines.map((line) => `${indent}    ${line.slice(least)}`).join('\n');
  return [
    `${indent}workgroupBarrier();`,
    `${indent}for (var o = WG / 2u; o > 0u; o = o / 2u) {`,
    `${indent}  if (tid < o) {`,
    `${indent}    let j = tid + o;`,
    body,
    `${indent}  }`,
    `${indent}  workgroupBarrier();`,
    `${indent}}`,
  ].join('\n');
}
