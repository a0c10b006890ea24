// An in-process card reader for fare lanes where the private pcscd has no slot left: it runs the fare hook
// exactly as the PC/SC driver does (read the card, the transaction with the same exchange, then present the
// credential with its result).
import { SimulatedSource } from '../../drivers/simulated.js';
import type { CardTransaction, SourceEvent } from '../../drivers/seams.js';
import { readTap } from '../../protocol/card-session.js';
import type { VirtualCard } from '../../simulator/virtual-card.js';
import { cardExchange } from '../fares/support.js';

export class HookedSource extends SimulatedSource {
  hook?: CardTransaction;
  private emitted?: (e: SourceEvent) => void;
  setTransaction(t: CardTransaction | undefined) {
    this.hook = t;
  }
  override async start(emit: (e: SourceEvent) => void) {
    this.emitted = emit;
    await super.start(emit);
  }
  async tapCard(c: VirtualCard) {
    const ex = cardExchange(c);
    const read = await readTap(ex.exchange, c.atr, Date.now());
    if (!read.ok || (read.credential.kind !== 'card' && read.credential.kind !== 'phone-nfc')) throw new Error('unreadable');
    const transaction = await this.hook!(ex.exchange, read.credential.cardNumber, Date.now(), read.credential);
    this.emitted?.({ type: 'PRESENTED', presented: { kind: 'credential', credential: read.credential, transaction }, side: this.side, source: this.name, atMs: Date.now() });
    return transaction;
  }
}
