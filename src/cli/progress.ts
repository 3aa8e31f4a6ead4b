/** A one-line progress display on a terminal (stderr); silent when stderr is not a TTY. */
import type { Progress } from '../../codegen/manifest.ts';

export function terminalProgress(enabled = process.stderr.isTTY === true): Progress {
  let lastStage = '';
  let lastDraw = 0;
  return (stage, done, total) => {
    if (!enabled) return;
    const now = Date.now();
    if (stage === lastStage && done < total && now - lastDraw < 100) return;
    lastStage = stage;
    lastDraw = now;
    const width = 30;
    const filled = Math.round((done / Math.max(1, total)) * width);
    process.stderr.write(
      `\r${stage.padEnd(18)} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}`,
    );
    if (done >= total) process.stderr.write('\n');
  };
}
