/**
 * A JSON.parse failure described without the text that failed: V8's messages quote the input
 * (`Unexpected token 'r', "root:x:0:0:"... is not valid JSON`), and a file named by a damaged
 * or hostile bundle must not have its contents printed.
 */
export function jsonSyntaxError(e: unknown): string {
  const message = e instanceof Error ? e.message : '';
  const at = /position (\d+)/.exec(message);
  if (at) return `not valid JSON (syntax error at byte ${at[1]})`;
  if (/end of (JSON|data)/i.test(message)) return 'not valid JSON (ends too early)';
  return 'not valid JSON';
}
