/**
 * Errors the runtime throws instead of answering wrong. Each names the step that failed (the
 * prefill, or decode step k), the position in the sequence, and where known the dispatch,
 * buffer or limit involved, so a user (or the CLI) can report it without guessing.
 * Browser-safe: no Node imports.
 */

/** Logits that are NaN or ±Inf: the model's arithmetic broke (bad weights, overflowing scale). */
export class NonFiniteError extends Error {
  override readonly name = 'NonFiniteError';
  constructor(
    /** 'prefill' or 'decode step k' (k counts from 1: the step that fed generated token k-1). */
    readonly step: string,
    /** The sequence position whose logits were non-finite. */
    readonly position: number,
    detail = '',
  ) {
    super(
      `non-finite logits (NaN or Inf) in ${step} at position ${position}${detail ? `: ${detail}` : ''}`,
    );
  }
}

/** A WebGPU validation, out-of-memory or internal error raised while the runtime used the device. */
export class DeviceError extends Error {
  override readonly name = 'DeviceError';
  constructor(
    /** What the runtime was doing: 'loading the model', 'prefill at positions 0..4', … */
    readonly step: string,
    /** 'validation' | 'out-of-memory' | 'internal' (the GPUError subclass). */
    readonly kind: string,
    readonly gpuMessage: string,
  ) {
    super(`WebGPU ${kind} error during ${step}: ${gpuMessage.trim()}`);
  }
}

/** The device went away (driver reset, destroy(), out of memory at the OS level). */
export class DeviceLostError extends Error {
  override readonly name = 'DeviceLostError';
  constructor(
    readonly step: string,
    readonly reason: string,
    readonly gpuMessage: string,
  ) {
    super(
      `the WebGPU device was lost during ${step} (reason: ${reason}${gpuMessage ? `, message: ${gpuMessage.trim()}` : ''}); ` +
        'load the model again on a new device',
    );
  }
}

/** The sequence would outgrow its KV cache (a compile-time size). */
export class CapacityError extends Error {
  override readonly name = 'CapacityError';
  constructor(
    readonly needed: number,
    readonly capacity: number,
    message: string,
  ) {
    super(message);
  }
}
