// A rider's tap on a vpcd reader until the lane answers: a tap takes 0-400 ms to be seen (pcscd polls vpcd),
// the first after start may wait a poll more, and a reader that just started may see the last card leave
// (tap-again): the rider then taps again, up to three times. Returns the lane's last answer.
import type { VirtualCard } from '../../simulator/virtual-card.js';
import { waitUntil } from './wait.js';

export async function tapUntilDecided<D extends { reason: string }>(card: VirtualCard, port: number, decisions: readonly D[]): Promise<D | undefined> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = decisions.length;
    const t = card.tap({ port, leaveAfterIdleMs: 10_000 });
    await waitUntil(() => decisions.length > before, 5000, () => 'no decision').catch(() => undefined);
    t.remove();
    await t.done;
    const d = decisions.at(-1);
    if (decisions.length > before && d?.reason !== 'tap-again') return d;
  }
  return decisions.at(-1);
}
