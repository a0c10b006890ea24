// A virtual barrier board at the typed level (no bytes): flap mechanics, passage sensors, alarms.
// The simulated station puts one on every lane; the byte-level board on a pty wraps the same model.
// Normally open (protocol/README.md "Normally-open flaps"): the board numbers the bodies a walker model
// (lane-mechanics.ts) moves through the lane, reports them, and closes fast when told.

import type { BarrierCommand, BarrierEvent, BarrierMode, BodyExit, FlapPosition, FlapRegime, TypedBarrierPeer } from '../protocol/barrier.js';
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
  /** FAST_CLOSE (normally open): flaps shut this long after the command, on the fast, low-force profile. */
  fastCloseMs: number;
  /** Safe state when the runtime stops talking: open for egress, or locked. */
  failSafe: 'open' | 'locked';
}

export const DEFAULT_MECHANICS: BarrierMechanics = { openMs: 300, closeMs: 400, fastCloseMs: 250, failSafe: 'open' };

/** A body the board tracks in a normally-open lane: which way it walks, whether it may cross, where it is. */
export interface TrackedBody {
  direction: Direction;
  authorised: boolean;
  /** lane clock ms of the AUTHORISE that let it cross */
  authorisedAt?: number;
  inFlapZone: boolean;
  /** the order bodies entered in (nobody overtakes in a lane) */
  order: number;
}

export class VirtualBarrier implements TypedBarrierPeer {
  flaps: FlapPosition = 'closed';
  mode: BarrierMode = 'normal';
  fireAlarm = false;
  faultCode = 0;
  /** Passages authorised by OPEN commands and not yet walked through. */
  authorised = 0;
  openDirection: Direction = 'entry';
  /** Counters the simulator judges by. */
  readonly counts = { opens: 0, safetyReopens: 0, closes: 0, passed: 0, tailgates: 0, intrusions: 0, fastCloses: 0, authorisations: 0 };
  /** Normally closed until the runtime says otherwise (SET_FLAP_REGIME). */
  regime: FlapRegime = 'normally-closed';
  /** Normally open: bodies in the lane by number. */
  readonly bodies = new Map<number, TrackedBody>();
  /** Lane clock ms the flaps last finished closing (the judge reads it against a body's arrival). */
  closedAt = -Infinity;
  private nextBody = 1;
  private bodyOrder = 0;
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
        if (cmd.mode === 'free' || cmd.mode === 'emergency' || this.restsOpen()) this.moveFlaps('open');
        else if (this.authorised === 0) this.moveFlaps('closed');
        break;
      case 'SET_FLAP_REGIME':
        this.regime = cmd.regime;
        if (this.restsOpen()) this.moveFlaps('open');
        else if (this.mode === 'normal' && this.authorised === 0) this.moveFlaps('closed');
        break;
      case 'FAST_CLOSE':
        this.counts.fastCloses++;
        if (this.mode === 'normal' || this.mode === 'locked') this.moveFlaps('closed', true);
        break;
      case 'AUTHORISE': {
        this.counts.authorisations++;
        const b = this.bodies.get(cmd.body);
        if (!b || b.direction !== cmd.direction) break;
        b.authorised = true;
        b.authorisedAt = this.clock.now();
        if (this.mode === 'normal' && this.flaps !== 'open' && this.flaps !== 'opening' && !this.unauthorisedAhead(cmd.body)) this.moveFlaps('open');
        break;
      }
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

  // ---- normally open: bodies moved by a walker model (lane-mechanics.ts) ----

  /** Whether the board reports bodies (normally open, in mode normal). */
  get reportsBodies(): boolean {
    return this.restsOpen();
  }

  /** A body breaks the beam at the lane's mouth walking `direction`; reaches the flap zone in `etaMs`. Returns its number. */
  bodyEnters(direction: Direction, etaMs: number): number {
    const body = this.nextBody;
    this.nextBody = this.nextBody === 255 ? 1 : this.nextBody + 1;
    this.bodies.set(body, { direction, authorised: false, inFlapZone: false, order: this.bodyOrder++ });
    if (this.reportsBodies) this.emit({ type: 'BODY_ENTERED', direction, body, etaMs: Math.max(0, Math.min(65535, Math.round(etaMs))) });
    return body;
  }

  /**
   * The body reaches the flap zone: returns where the flaps were. Closed, it stands in front of them; else it
   * is between them, and closing flaps never close on it: the movement stops, OBSTRUCTION, they reopen.
   */
  bodyAtFlaps(body: number): FlapPosition {
    const b = this.bodies.get(body);
    const at = this.flaps;
    if (!b) return at;
    b.inFlapZone = at !== 'closed';
    if (this.reportsBodies) this.emit({ type: 'BODY_AT_FLAPS', direction: b.direction, body });
    if (at === 'closing') {
      this.emit({ type: 'OBSTRUCTION' });
      this.moveFlaps('open');
    }
    return at;
  }

  /** A body that stood in front of closed flaps steps between them (they opened). */
  bodyStepsIn(body: number): void {
    const b = this.bodies.get(body);
    if (b) b.inFlapZone = true;
  }

  /** The body walks through the flaps: passed if authorised (or free passage, emergency), else intruded. */
  bodyCrosses(body: number): BodyExit {
    const b = this.bodies.get(body);
    this.bodies.delete(body);
    if (!b) return 'intruded';
    const free = this.mode === 'free' || this.mode === 'emergency';
    const way: BodyExit = b.authorised || free ? 'passed' : 'intruded';
    if (way === 'passed') this.counts.passed++;
    else this.counts.intrusions++;
    if (this.reportsBodies) this.emit({ type: 'BODY_LEFT', direction: b.direction, body, way });
    else this.emit(way === 'passed' ? { type: 'PASSED', direction: b.direction } : { type: 'INTRUSION', direction: b.direction });
    return way;
  }

  /** The body turns round and leaves by the end it came in. */
  bodyTurnsBack(body: number): void {
    const b = this.bodies.get(body);
    this.bodies.delete(body);
    if (b && this.reportsBodies) this.emit({ type: 'BODY_LEFT', direction: b.direction, body, way: 'turned-back' });
  }

  /** Another body without authorisation is nearer the flaps than `body` (ahead of it, or coming the other way). */
  private unauthorisedAhead(body: number): boolean {
    const me = this.bodies.get(body);
    if (!me) return false;
    for (const [n, b] of this.bodies) {
      if (n === body || b.authorised) continue;
      if (b.direction !== me.direction || b.order < me.order) return true;
    }
    return false;
  }

  private restsOpen(): boolean {
    return this.regime === 'normally-open' && this.mode === 'normal';
  }

  private bodyInFlapZone(): boolean {
    for (const b of this.bodies.values()) if (b.inFlapZone) return true;
    return false;
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

  private moveFlaps(to: 'open' | 'closed', fast = false): void {
    if (this.flapTimer !== undefined) this.clock.clearTimeout(this.flapTimer);
    if (to === 'closed' && (this.obstructed || (this.flaps !== 'closed' && this.bodyInFlapZone()))) {
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
    const moveMs = to === 'open' ? this.mechanics.openMs : fast ? this.mechanics.fastCloseMs : this.mechanics.closeMs;
    if (this.stuckFlap) {
      // The drive times out instead of reaching the end stop: position stays mid-way.
      this.flapTimer = this.clock.setTimeout(
        () => {
          this.flapTimer = undefined;
          this.faultCode = VirtualBarrier.STUCK_FLAP_FAULT;
          this.emit({ type: 'FAULT', code: VirtualBarrier.STUCK_FLAP_FAULT });
        },
        moveMs,
      );
      return;
    }
    this.flapTimer = this.clock.setTimeout(() => {
      this.flapTimer = undefined;
      this.flaps = to;
      if (to === 'closed') this.closedAt = this.clock.now();
      this.emit({ type: 'FLAPS', position: to });
    }, moveMs);
  }

  private emit(e: BarrierEvent): void {
    for (const l of this.listeners) l(e);
  }
}
