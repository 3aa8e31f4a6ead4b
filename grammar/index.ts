/** The strata DSL front end: text to a span-annotated AST. */
export type * from './ast.ts';
export { SpecError, excerpt, joinSpans, spanAt, type Span } from './diagnostics.ts';
export { parseStrata } from './parse.ts';
export { RESERVED_WORDS } from './lexer.ts';
export { closest, didYouMean, editDistance } from './suggest.ts';
