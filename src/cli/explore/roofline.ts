/**
 * A roofline time estimate: a step takes the longer of its bytes over the memory bandwidth and
 * its FLOPs over the FLOP rate, plus a fixed overhead per dispatch. Estimates only; `--measure`
 * (later) puts measured times beside them.
 */
export interface Roofline {
  name: string;
  /** Bytes per second. */
  bandwidth: number;
  /** FLOPs per second. */
  flops: number;
  /** Seconds per dispatch. */
  dispatch: number;
  /** How the figures were obtained. */
  source: string;
}

export const DEVICES: Readonly<Record<string, Roofline>> = {
  h200: {
    name: 'h200',
    bandwidth: 4.8e12,
    // strata's WGSL matmuls run on the CUDA cores (f32 FMA), not the tensor cores.
    flops: 67e12,
    dispatch: 5e-6,
    source:
      'NVIDIA H200 SXM datasheet: 4.8 TB/s HBM3e, 67 TFLOP/s FP32 (non-tensor); 5 us per ' +
      'dispatch is an assumed order of magnitude for Dawn on Vulkan, to be replaced by --measure',
  },
  // Calibrated, not datasheet: strata's own measured rates on the H100 (2026-12-06), so that
  // explore's estimates sit near what --measure finds there. Against the 4-design sweep of
  // bench/results/2026-12-06-0421-nvidia-h100-explore-measure.json the datasheet figures
  // (3.35 TB/s, 67 TFLOP/s, 5 µs) overestimated decode 1.2–1.6× and prefill 3.1–3.4×.
  h100: {
    name: 'h100',
    bandwidth: 3.06e12,
    flops: 28.6e12,
    dispatch: 7e-6,
    source:
      'NVIDIA H100 SXM as strata measured it (bench/RESULTS-nvidia-h100.md, 2026-12-06): 3.06 ' +
      'TB/s streaming read, 28.6 TFLOP/s for its f32 matmul at 4096^3, and 7 us a dispatch, ' +
      'which the f16 decodes of Llama-3.2-1B (99 dispatches, 1.498 ms) and the Jamba-style ' +
      'hybrid (107, 0.998 ms) both leave once their weight reads are taken out',
  },
  laptop: {
    name: 'laptop',
    bandwidth: 100e9,
    flops: 3.6e12,
    dispatch: 20e-6,
    source:
      'a generic laptop GPU at Apple M2 figures (Apple: 100 GB/s unified memory, 3.6 TFLOP/s ' +
      'FP32); 20 us per dispatch is an assumed order of magnitude for a browser WebGPU queue',
  },
};

/**
 * The preset measured on (or written for) the adapter's GPU, by its name, or null: explore
 * --measure takes it as the default roofline, so estimates and measurements describe one device.
 */
export function presetForAdapter(info: { device: string; description: string }): string | null {
  const name = `${info.device} ${info.description}`.toLowerCase();
  if (/h100/.test(name)) return 'h100';
  if (/h200/.test(name)) return 'h200';
  return null;
}

export function stepSeconds(r: Roofline, bytes: number, flops: number, dispatches: number): number {
  return Math.max(bytes / r.bandwidth, flops / r.flops) + dispatches * r.dispatch;
}
