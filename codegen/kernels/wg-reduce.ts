/**
 * Workgroup-wide max and sum through a halving tree, for kernels with one value per thread
 * (the attention-like kernels of h2o.ts, nsa.ts and indexer.ts). The caller declares `const WG:
 * u32` (a power of two) and the workgroup array `buf` of WG floats; the trailing barrier lets
 * every thread read the result before the next call overwrites buf[0].
 */
export function wgReductionsWgsl(buf: string): string {
  const tree = (name: string, combine: (a: string, b: string) => string) => /* wgsl */ `
fn ${name}(x: f32, tid: u32) -> f32 {
  ${buf}[tid] = x;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w /= 2u) {
    if (tid < w) { ${buf}[tid] = ${combine(`${buf}[tid]`, `${buf}[tid + w]`)}; }
    workgroupBarrier();
  }
  let r = ${buf}[0];
  workgroupBarrier();
  return r;
}
`;
  return tree('wg_max', (a, b) => `max(${a}, ${b})`) + tree('wg_sum', (a, b) => `${a} + ${b}`);
}
