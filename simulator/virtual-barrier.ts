// A virtual barrier board at the typed level (no bytes): flap mechanics, passage sensors, alarms.
// The simulated station puts one on every lane; the byte-level board on a pty wraps the same model.

import type { BarrierCommand, BarrierEvent, BarrierMode, FlapPosition, TypedBarrierPeer } from '../protocol/barrier.js';
import type { Direction } from '../protocol/credential.js';

/** The timer part of a clock; the simulator's virtual clock and the system clock both fit. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): any;
  clearTimeout(id: any): void;
}

export interface BarrierMechanics {
  openMs: number;
  closeMs: number;
  /** Safe state when the runtime stops talking: open for egress, or locked. */
  failSafe: 'open' | 'locked';
}

export const DEFAULT_MECHANICS: BarrierMechanics = { openMs: 300, closeMs: 400, failSafe: 'open' };

export class VirtualBarrier implements TypedBarrierPeer {
  flaps: FlapPosition = 'closed';
  mode: BarrierMode = 'normal';
  fireAlarm = false;
  faultCode = 0;
  /** Passages authorised by OPEN commands and not yet walked through. */
  authorised = 0;
  openDirection: Direction = 'entry';
  /** Counters the simulator judges by. */
  readonly counts = { opens: 0, safetyReopens: 0, closes: 0, passed: 0, tailgates: 0, intrusions: 0 };
  /** Set while something blocks the flaps: a close then reports OBSTRUCTION instead of closing. */
  obstructed = false;
  /** Fault switch: the flap drive is jammed; a movement starts but never ends, and reports FAULT. */
  stuckFlap = false;
  /** Fault code reported when a jammed flap fails to finish a movement (0x01xx: flap drive). */
  static readonly STUCK_FLAP_FAULT = 0x0101;
  /** Fault code of a passage-sensor failure (0x02xx: passage sensors). */
  static readonly SENSOR_FAULT = 0x0201;
  /** True after failSafe() until the next command from the runtime. */
  inFailSafe = false;
  /** What the rider display shows: the last DISPLAY's text id, or DISPLAY_DATE's with its day. */
  display: { textId: number; day?: string } = { textId: 0 };

  private listeners: ((e: BarrierEvent) => void)[] = [];
  private commandListeners: ((c: BarrierCommand) => void)[] = [];
  private flapTimer: any;

  readonly mechanics: BarrierMechanics;

  constructor(
    private readonly clock: Timers,
    mechanics: BarrierMechanics = DEFAULT_MECHANICS,
  ) {
    // A copy: tests and fault switches change one board's mechanics, never the defaults.
    this.mechanics = { ...mechanics };
  }

  listen(fn: (e: BarrierEvent) => void): void {
    this.listeners.push(fn);
  }

  /** Watch commands as they arrive (the simulator's ground-truth judge and the dashboard use this). */
  onCommand(fn: (c: BarrierCommand) => void): void {
    this.commandListeners.push(fn);
  }

  command(cmd: BarrierCommand): void {
    this.inFailSafe = false;
    for (const l of this.commandListeners) l(cmd);
    switch (cmd.type) {
      case 'OPEN':
        if (cmd.passages === 0) this.counts.safetyReopens++;
        else {
          this.counts.opens++;
          this.authorised += cmd.passages;
          this.openDirection = cmd.direction;
        }
        this.moveFlaps('open');
        break;
      case 'CLOSE':
        this.counts.closes++;
        if (this.mode === 'normal' || this.mode === 'locked') this.moveFlaps('closed');
        break;
      case 'SET_MODE':
        this.mode = cmd.mode;
        if (cmd.mode === 'free' || cmd.mode === 'emergency') this.moveFlaps('open');
        else if (this.authorised === 0) this.moveFlaps('closed');
        break;
      case 'STATUS_REQUEST':
        this.report();
        break;
      case 'DISPLAY':
        this.display = { textId: cmd.textId };
        break;
      case 'DISPLAY_DATE':
        this.display = { textId: cmd.textId, day: cmd.day };
        break;
      case 'INDICATE':
        break;
    }
  }

  /** A passenger walks through. Authorised passages count down; unauthorised bodies raise alarms. */
  walkThrough(direction: Direction, opts: { tailgater?: boolean } = {}): void {
    const open = this.flaps === 'open' || this.flaps === 'opening';
    if (this.mode === 'free' || this.mode === 'emergency') {
      this.counts.passed++;
      this.emit({ type: 'PASSED', direction });
      return;
    }
    if (open && this.authorised > 0 && direction === this.openDirection) {
      this.authorised--;
      this.counts.passed++;
      this.emit({ type: 'PASSED', direction });
      if (opts.tailgater) {
        this.counts.tailgates++;
        this.emit({ type: 'TAILGATE' });
      }
      return;
    }
    this.counts.intrusions++;
    this.emit({ type: 'INTRUSION', direction });
  }

  setFireAlarm(active: boolean): void {
    this.fireAlarm = active;
    // The board opens on its own: the fire input is wired to it, whatever the runtime does.
    if (active) {
      this.mode = 'emergency';
      this.moveFlaps('open');
    }
    this.emit({ type: 'FIRE_ALARM', active });
  }

  setFault(code: number): void {
    this.faultCode = code;
    if (code !== 0) this.emit({ type: 'FAULT', code });
    else this.report();
  }

  /** The runtime went silent: go to the configured safe state. */
  failSafe(): void {
    this.inFailSafe = true;
    this.authorised = 0;
    if (this.mechanics.failSafe === 'open') this.moveFlaps('open');
    else this.moveFlaps('closed');
  }

  private report(): void {
    this.emit({ type: 'STATUS', flaps: this.flaps, mode: this.mode, faultCode: this.faultCode, fireAlarm: this.fireAlarm });
  }

  private moveFlaps(to: 'open' | 'closed'): void {
    if (this.flapTimer !== undefined) this.clock.clearTimeout(this.flapTimer);
    if (to === 'closed' && this.obstructed) {
      this.emit({ type: 'OBSTRUCTION' });
      to = 'open';
    }
    if (this.flaps === to) {
      this.flapTimer = undefined;
      this.emit({ type: 'FLAPS', position: to });
      return;
    }
    this.flaps = to === 'open' ? 'opening' : 'closing';
    if (to === 'closed') this.authorised = 0;
    if (this.stuckFlap) {
      // The drive times out instead of reaching the end stop: position stays mid-way.
      this.flapTimer = this.clock.setTimeout(
        () => {
          this.flapTimer = undefined;
          this.faultCode = VirtualBarrier.STUCK_FLAP_FAULT;
          this.emit({ type: 'FAULT', code: VirtualBarrier.STUCK_FLAP_FAULT });
        },
        to === 'open' ? this.mechanics.openMs : this.mechanics.closeMs,
      );
      return;
    }
    this.flapTimer = this.clock.setTimeout(
      () => {
        this.flapTimer = undefined;
        this.flaps = to;
        this.emit({ type: 'FLAPS', position: to });
      },
      to === 'open' ? this.mechanics.openMs : this.mechanics.closeMs,
    );
  }

  private emit(e: BarrierEvent): void {
    for (const l of this.listeners) l(e);
  }
}
