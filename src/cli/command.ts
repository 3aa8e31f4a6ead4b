/** One CLI subcommand: its help text and its entry point (exit code returned, never thrown for user errors). */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** An error caused by the user's input: printed as its message, never with a stack trace. */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** `value` when it is one of `allowed`; else a UserError naming the flag and the choices. */
export function oneOf<T extends string>(flag: string, allowed: readonly T[], value: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UserError(`--${flag} must be one of ${allowed.join(', ')}, got '${value}'`);
}
