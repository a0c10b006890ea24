// In-process simulated drivers: no bytes, no devices. Used by the virtual-time station simulator,
// by `gate run` with `type: "simulated"` drivers, and by tests of the gate machine.

import type { BarrierCommand, BarrierEvent, TypedBarrierPeer } from '../protocol/barrier.js';
import type { Credential, Direction } from '../protocol/credential.js';
import type { BarrierLink, CardFaultReason, Clock, CredentialSource, SourceEvent } from './seams.js';

/** A BarrierLink over a typed in-process wire to a virtual barrier board. */
export class SimulatedBarrierLink implements BarrierLink {
  private emit?: (e: BarrierEvent) => void;
  private listening = false;
  constructor(
    private readonly peer: TypedBarrierPeer,
    private readonly clock: Clock,
  ) {}
  async start(emit: (e: BarrierEvent) => void): Promise<void> {
    this.emit = emit;
    if (!this.listening) {
      this.listening = true;
      this.peer.listen((e) => this.emit?.(e));
    }
    // Resync as a real link would: ask for status; link is up once the board answered.
    this.clock.setTimeout(() => {
      this.emit?.({ type: 'LINK', up: true });
      this.peer.command({ type: 'STATUS_REQUEST' });
    }, 0);
  }
  send(cmd: BarrierCommand): void {
    this.peer.command(cmd);
  }
  async stop(): Promise<void> {
    this.emit = undefined;
  }
}

/**
 * A credential source driven by code: the simulator (or a test, or `gate run` reading stdin) calls
 * present() for a tap or a QR code shown, cardFault() for a torn read, fault()/recover() for the device.
 */
export class SimulatedSource implements CredentialSource {
  private emit?: (e: SourceEvent) => void;
  constructor(
    readonly name: string,
    readonly side: Direction,
    private readonly clock: Clock,
  ) {}
  async start(emit: (e: SourceEvent) => void): Promise<void> {
    this.emit = emit;
  }
  async stop(): Promise<void> {
    this.emit = undefined;
  }
  get running(): boolean {
    return this.emit !== undefined;
  }
  present(credential: Credential): void {
    this.emit?.({ type: 'PRESENTED', presented: { kind: 'credential', credential }, side: this.side, source: this.name, atMs: this.clock.now() });
  }
  showQrText(text: string): void {
    this.emit?.({ type: 'PRESENTED', presented: { kind: 'qr-text', text }, side: this.side, source: this.name, atMs: this.clock.now() });
  }
  cardFault(reason: CardFaultReason, detail = 'simulated'): void {
    this.emit?.({ type: 'CARD_FAULT', reason, side: this.side, source: this.name, detail, atMs: this.clock.now() });
  }
  fault(detail = 'simulated reader fault'): void {
    this.emit?.({ type: 'SOURCE_FAULT', source: this.name, detail });
  }
  recover(): void {
    this.emit?.({ type: 'SOURCE_OK', source: this.name });
  }
}
