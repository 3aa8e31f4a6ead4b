import { expect } from 'vitest';
import { SpecError } from '../../src/spec/errors.ts';
import { parseSpec } from '../../src/spec/load.ts';
import type { MixerSpec, ModelIR } from '../../src/spec/model.ts';
import { printSpec } from '../../src/spec/print.ts';

/** The settings every test model shares, so a test shows only what it is about. */
export const HEADER = 'vocab 256\n  dim 64\n  max_context 128\n  norm rms(eps: 1e-5)';

/** A model "m" whose body is HEADER followed by the given statements. */
export function source(statements: string, header = HEADER): string {
  return `model "m" {\n  ${header}\n  ${statements.trim().split('\n').join('\n  ')}\n}\n`;
}

export function resolve(statements: string, header = HEADER): ModelIR {
  return parseSpec(source(statements, header), 'm.strata');
}

/** Prints, checks the text resolves to the same model, and returns the text. */
export function roundTrip(model: ModelIR): string {
  const text = printSpec(model);
  expect(parseSpec(text, 'printed.strata')).toEqual(model);
  return text;
}

/** The mixer that definition `def` resolves to. */
export function mixerOf(def: string): MixerSpec | null {
  return resolve(`mixer m = ${def}\nlayers 2 x m`).layers[0].mixer;
}

/** The SpecError a text raises (fails the test when there is none). */
export function specError(run: () => unknown): SpecError {
  try {
    run();
  } catch (e) {
    if (e instanceof SpecError) return e;
    throw e;
  }
  expect.fail('expected a SpecError');
}

/** The SpecError of a model body, with the source text its span points into. */
export function bodyError(statements: string, header = HEADER): SpecError & { text: string } {
  const text = source(statements, header);
  return Object.assign(
    specError(() => parseSpec(text, 'm.strata')),
    { text },
  );
}

/** The source text a SpecError points at. */
export function blamed(e: SpecError & { text: string }): string {
  expect(e.span).not.toBeNull();
  return e.text.slice(e.span!.offset, e.span!.offset + e.span!.length);
}
