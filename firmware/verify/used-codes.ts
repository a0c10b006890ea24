// UsedCodes shared among the lanes of a station over UDP: a lane that accepts a code tells every peer,
// retrying until each one acknowledges or the code can no longer be valid. Lookups stay local and
// synchronous (they sit on the decision path). What happens while a peer is unreachable:
// firmware/README.md, "Used QR code ids among lanes".

import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { decodeUsedCodes, encodeUsedCodes, MAX_CODES_PER_DATAGRAM, type UsedCodesMessage } from '../../protocol/used-codes.js';
import { systemClock, type Clock } from '../../drivers/seams.js';
import type { UsedCodes } from './decision-core.js';

export interface PeerAddress {
  id: string;
  host: string;
  port: number;
}

export interface StationUsedCodesOptions {
  /** This lane's id (the `from` of its datagrams). */
  id: string;
  bind: { host: string; port: number };
  peers: PeerAddress[];
  /** Resend an unacknowledged `used` datagram this often. */
  retryMs?: number;
  helloMs?: number;
  /** A peer silent this long is reported unreachable. */
  peerDownMs?: number;
  clock?: Clock;
  onPeer?: (peer: string, up: boolean) => void;
}

interface Pending {
  n: number;
  codes: [string, number][];
  lastSentMs: number;
}

interface PeerState extends PeerAddress {
  up: boolean;
  lastHeardMs: number;
  boot?: string;
  pending: Map<number, Pending>;
}

export class StationUsedCodes implements UsedCodes {
  private readonly until = new Map<string, number>();
  private readonly peers = new Map<string, PeerState>();
  private socket?: Socket;
  private timer?: ReturnType<Clock['setTimeout']>;
  private n = 0;
  private readonly boot = randomBytes(6).toString('hex');
  private readonly clock: Clock;
  readonly counters = { sent: 0, resent: 0, received: 0, acked: 0, badDatagram: 0, unknownPeer: 0, expiredUnsent: 0 };

  constructor(private readonly opts: StationUsedCodesOptions) {
    this.clock = opts.clock ?? systemClock;
    for (const p of opts.peers) this.peers.set(p.id, { ...p, up: false, lastHeardMs: 0, pending: new Map() });
  }

  /** Bind the socket and start the hello/retry tick. */
  async start(): Promise<void> {
    const s = createSocket('udp4');
    this.socket = s;
    s.on('message', (b, rinfo) => this.onDatagram(b, rinfo.address, rinfo.port));
    s.on('error', () => {}); // ICMP unreachable and the like: a silent peer is handled by the hello timeout
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind(this.opts.bind.port, this.opts.bind.host, () => {
        s.off('error', rej);
        res();
      });
    });
    this.tick();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((res) => s.close(() => res()));
  }

  get address(): { host: string; port: number } | undefined {
    const a = this.socket?.address();
    return a ? { host: a.address, port: a.port } : undefined;
  }

  peerView(): { id: string; up: boolean; pending: number }[] {
    return [...this.peers.values()].map((p) => ({ id: p.id, up: p.up, pending: p.pending.size }));
  }

  isUsed(codeId: string, nowMs: number): boolean {
    const u = this.until.get(codeId);
    if (u === undefined) return false;
    if (u < nowMs) {
      this.until.delete(codeId);
      return false;
    }
    return true;
  }

  markUsed(codeId: string, untilMs: number): void {
    this.remember(codeId, untilMs);
    for (const p of this.peers.values()) this.queue(p, [[codeId, untilMs]]);
  }

  private remember(codeId: string, untilMs: number): void {
    const u = this.until.get(codeId);
    if (u === undefined || u < untilMs) this.until.set(codeId, untilMs);
  }

  private queue(p: PeerState, codes: [string, number][]): void {
    const n = ++this.n;
    const pend = { n, codes, lastSentMs: this.clock.now() };
    p.pending.set(n, pend);
    this.send(p, { t: 'used', from: this.opts.id, boot: this.boot, n, codes });
    this.counters.sent++;
  }

  private send(p: PeerAddress, m: UsedCodesMessage): void {
    this.socket?.send(encodeUsedCodes(m), p.port, p.host);
  }

  private onDatagram(b: Uint8Array, host: string, port: number): void {
    const d = decodeUsedCodes(b);
    if (!d.ok) {
      this.counters.badDatagram++;
      return;
    }
    const m = d.msg;
    const p = this.peers.get(m.from);
    // Only configured peers at their configured address are believed.
    if (!p || p.port !== port || !sameHost(p.host, host)) {
      this.counters.unknownPeer++;
      return;
    }
    this.heard(p, 'boot' in m ? m.boot : undefined);
    if (m.t === 'used') {
      this.counters.received++;
      for (const [id, until] of m.codes) this.remember(id, until);
      this.send(p, { t: 'ack', from: this.opts.id, n: m.n });
    } else if (m.t === 'ack') {
      if (p.pending.delete(m.n)) this.counters.acked++;
    }
  }

  private heard(p: PeerState, boot: string | undefined): void {
    const wasUp = p.up;
    p.lastHeardMs = this.clock.now();
    p.up = true;
    if (!wasUp) this.opts.onPeer?.(p.id, true);
    if (boot !== undefined && boot !== p.boot) {
      // First contact, or the peer restarted and lost its memory: send it every code still valid.
      const first = p.boot === undefined;
      p.boot = boot;
      if (!first || this.until.size > 0) this.syncTo(p);
    }
  }

  private syncTo(p: PeerState): void {
    const now = this.clock.now();
    let batch: [string, number][] = [];
    for (const [id, u] of this.until) {
      if (u < now) continue;
      batch.push([id, u]);
      if (batch.length === MAX_CODES_PER_DATAGRAM) {
        this.queue(p, batch);
        batch = [];
      }
    }
    if (batch.length) this.queue(p, batch);
  }

  private tick(): void {
    const now = this.clock.now();
    const retryMs = this.opts.retryMs ?? 200;
    const downMs = this.opts.peerDownMs ?? 3000;
    for (const p of this.peers.values()) {
      this.send(p, { t: 'hello', from: this.opts.id, boot: this.boot });
      if (p.up && now - p.lastHeardMs > downMs) {
        p.up = false;
        this.opts.onPeer?.(p.id, false);
      }
      for (const [n, pend] of p.pending) {
        pend.codes = pend.codes.filter(([, u]) => u >= now);
        if (pend.codes.length === 0) {
          // Nothing left worth telling: the codes expired before the peer heard of them.
          p.pending.delete(n);
          this.counters.expiredUnsent++;
          continue;
        }
        if (now - pend.lastSentMs >= retryMs) {
          pend.lastSentMs = now;
          this.send(p, { t: 'used', from: this.opts.id, boot: this.boot, n, codes: pend.codes });
          this.counters.resent++;
        }
      }
    }
    for (const [id, u] of this.until) if (u < now) this.until.delete(id);
    this.timer = this.clock.setTimeout(() => this.tick(), Math.min(retryMs, this.opts.helloMs ?? 500));
  }
}

function sameHost(a: string, b: string): boolean {
  const norm = (h: string) => (h === 'localhost' ? '127.0.0.1' : h.replace(/^::ffff:/, ''));
  return norm(a) === norm(b);
}
