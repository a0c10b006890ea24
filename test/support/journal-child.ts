// A stand-in lane for the kill -9 test: journals one decision per tap and "acts" (reports the tap on
// stdout, the side channel) only once append() has resolved, i.e. once the record is durable.
// Usage: node journal-child.js <dir> <backofficeUrl> <laneId> <firstTap> <lastTap> <actedFile>
// The side channel is a file opened for append: a line written there survives the kill -9.
import { openSync, writeSync } from 'node:fs';
import { FileJournal } from '../../firmware/journal/file-journal.js';

const [dir, url, laneId, first, last, actedFile] = process.argv.slice(2);
const side = openSync(actedFile, 'a');
const firstTap = Number(first), lastTap = Number(last);
const j = await FileJournal.open({ dir, laneId, uploadUrl: url, uploadBatch: 200, uploadIntervalMs: 15, segmentBytes: 16 * 1024 });
process.stdout.write(`ready ${j.lastSeq}\n`);

const inFlight = new Set<Promise<void>>();
for (let n = firstTap; n <= lastTap; n++) {
  const p = j
    .append({ type: 'decision', laneId, atMs: Date.now(), direction: 'entry', kind: 'card', ref: `tap-${n}`, grant: true, reason: 'ok', source: 'kill-test' })
    .then((seq) => {
      writeSync(side, `acted ${seq} ${n}\n`);
    });
  inFlight.add(p);
  void p.finally(() => inFlight.delete(p));
  // A few taps at once, as on a busy station with several readers: group commit takes them together.
  if (inFlight.size >= 8) await Promise.race(inFlight);
  // Taps arrive at a busy lane's pace, not as fast as fsync allows: on a fast disk an unpaced child
  // finished its share before the test had killed it 200 times.
  if (n % 2 === 0) await new Promise((r) => setTimeout(r, 1));
}
await Promise.all(inFlight);
while (j.backlog > 0) {
  if (!(await j.uploadNow())) await new Promise((r) => setTimeout(r, 20));
}
await j.close();
writeSync(side, 'done\n');
