/** One of --workers W fuzzing loops, in its own thread so that generation runs in parallel too. */
import { parentPort, workerData } from 'node:worker_threads';
import { drive, type DriveOptions } from './drive.ts';

const port = parentPort;
if (!port) throw new Error('driver-worker.ts runs only as a worker thread');
const known = new Set<string>((workerData as { known: string[] }).known);
// Signatures other workers found: no need to shrink them again here.
port.on('message', (m: { known?: string }) => {
  if (m.known) known.add(m.known);
});
const stats = await drive((workerData as { opts: DriveOptions }).opts, known, (found) =>
  port.postMessage({ found }),
);
port.postMessage({ stats });
port.close();
