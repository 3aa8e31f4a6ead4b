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
