/** The error type of every spec stage, defined with the grammar (the first stage to report). */
export { SpecError, type Span } from '../../grammar/diagnostics.ts';
