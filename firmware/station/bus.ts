// One MQTT 5 connection to the station broker (MQTT.js): TLS with the station CA, the client's own
// username and password (and certificate when the broker asks), a persistent session, a will. Nothing is
// queued while the broker is away: callers publish only when connected and catch up on `connect`.

import { EventEmitter } from 'node:events';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { MqttClient, type IClientOptions } from 'mqtt';
import type { Logger } from '../config/log.js';

export interface BusClientOptions {
  url: string;
  ca?: string;
  cert?: string;
  key?: string;
  username: string;
  password: string;
  clientId: string;
  keepaliveSeconds: number;
  /** 0 with clean: a session that ends with the connection (the station view). */
  sessionExpirySeconds: number;
  clean?: boolean;
  reconnectMs: number;
  will?: { topic: string; payload: Uint8Array; retain: boolean; qos: 0 | 1 };
  /** Topic filters, subscribed QoS 1 whenever the broker does not hold our session. */
  subscriptions: string[];
  /** Do not get back what this client publishes. */
  noLocal?: boolean;
  /** How many QoS 1 messages the broker may have in flight to us (MQTT 5 Receive Maximum). */
  receiveMaximum?: number;
  /** How long the bus may read in one turn of the event loop before it yields (default 0.5 ms). */
  readSliceMs?: number;
  log: Logger;
}

/** Where the broker is and how this client proves who it is: what a lane's `station` config says of its connection (`StationSettings` takes these fields from here). */
export type BusConnection = Pick<BusClientOptions, 'url' | 'ca' | 'cert' | 'key' | 'username' | 'password' | 'keepaliveSeconds' | 'sessionExpirySeconds' | 'reconnectMs'>;

/** Just the connection fields of something that has them (settings carry more). */
export function busConnection(s: BusConnection): BusConnection {
  const { url, ca, cert, key, username, password, keepaliveSeconds, sessionExpirySeconds, reconnectMs } = s;
  return { url, ca, cert, key, username, password, keepaliveSeconds, sessionExpirySeconds, reconnectMs };
}

export interface PublishOptions {
  qos?: 0 | 1;
  retain?: boolean;
  /** MQTT 5 message expiry, seconds: the broker drops it for a client that has not had it by then. */
  expirySeconds?: number;
}

type BusEvents = {
  /** Connected; `sessionPresent` false means the broker lost (or never had) our session and subscriptions. */
  connect: [sessionPresent: boolean];
  message: [topic: string, payload: Buffer];
  /** The connection went away (or an attempt failed), with why. */
  down: [why: string];
};

export class BusClient extends EventEmitter<BusEvents> {
  readonly client: MqttClient;
  lastError?: string;
  readonly counters = { connects: 0, downs: 0, published: 0, publishedBytes: 0, notConnected: 0, received: 0, receivedBytes: 0, refusedConnect: 0, tlsErrors: 0, readYields: 0 };
  private wasUp = false;
  /** Connected and subscribed. */
  private ready = false;
  private ended = false;

  constructor(private readonly opts: BusClientOptions) {
    super();
    const o: IClientOptions = {
      protocolVersion: 5,
      clientId: opts.clientId,
      username: opts.username,
      password: opts.password,
      clean: opts.clean ?? false,
      keepalive: opts.keepaliveSeconds,
      reconnectPeriod: opts.reconnectMs,
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      resubscribe: false,
      queueQoSZero: false,
      rejectUnauthorized: true,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      properties: { sessionExpiryInterval: opts.sessionExpirySeconds, receiveMaximum: opts.receiveMaximum ?? 100 },
      will: opts.will && { topic: opts.will.topic, payload: Buffer.from(opts.will.payload), retain: opts.will.retain, qos: opts.will.qos },
      manualConnect: true,
      // MQTT.js's debug calls cost a rest-argument array each, several per packet, even when disabled.
      log: () => {},
    };
    this.client = new MqttClient(() => this.connectStream(), o);
    this.client.on('connect', (p) => {
      // Small messages go out at once: Nagle held a used code behind the previous message's ACK (40 ms).
      (this.client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
      this.counters.connects++;
      this.wasUp = true;
      this.lastError = undefined;
      const present = p.sessionPresent === true;
      const ready = () => {
        this.ready = true;
        opts.log.info({ event: 'bus-up', sessionPresent: present }, 'station bus connected');
        this.emit('connect', present);
      };
      // Ready once the broker holds our subscriptions: nothing a peer says from then on is missed.
      if (present || opts.subscriptions.length === 0) return ready();
      this.client.subscribe(
        Object.fromEntries(opts.subscriptions.map((t) => [t, { qos: 1 as const, nl: opts.noLocal ?? false }])),
        (err, granted) => {
          if (err) opts.log.warn({ event: 'bus-subscribe-failed', err: err.message }, 'station bus subscription failed');
          const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
          if (refused.length) opts.log.warn({ event: 'bus-subscribe-refused', topics: refused }, 'station broker refused subscriptions');
          if (!err && this.client.connected) ready();
        },
      );
    });
    this.client.on('message', (topic, payload) => {
      this.counters.received++;
      this.counters.receivedBytes += payload.length;
      this.emit('message', topic, payload);
    });
    this.client.on('error', (e: Error & { code?: number | string }) => {
      const why = typeof e.code === 'number' ? `refused by broker (${e.code}): ${e.message}` : e.message;
      if (typeof e.code === 'number') this.counters.refusedConnect++;
      else if (/certificate|self.signed|TLS|SSL|verify/i.test(e.message)) this.counters.tlsErrors++;
      if (why !== this.lastError) opts.log.warn({ event: 'bus-error', err: why }, 'station bus error');
      this.lastError = why;
      this.emit('down', why);
    });
    this.client.on('close', () => {
      this.ready = false;
      if (this.wasUp) {
        this.wasUp = false;
        this.counters.downs++;
        if (!this.ended) opts.log.warn({ event: 'bus-down' }, 'station bus connection lost');
        this.emit('down', this.lastError ?? 'connection closed');
      }
    });
  }

  start(): void {
    this.client.connect();
  }

  /**
   * The connection MQTT.js speaks over (a new one on every reconnect): TLS with the station CA (or plain
   * TCP for a bench broker), read in slices of `readSliceMs` per turn of the event loop (`paceReads`).
   */
  private connectStream(): Socket {
    const u = new URL(this.opts.url);
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const secure = u.protocol === 'mqtts:';
    const port = Number(u.port) || (secure ? 8883 : 1883);
    let s: Socket;
    if (secure) {
      const t = tlsConnect({ host, port, ca: this.opts.ca, cert: this.opts.cert, key: this.opts.key, rejectUnauthorized: true, servername: isIP(host) ? undefined : host });
      // As MQTT.js's own TLS stream: a handshake failure is the client's error (counted, said), then closed.
      const failed = (e: Error) => {
        this.client.emit('error', e);
        t.end();
      };
      t.on('error', failed);
      t.once('secureConnect', () => t.off('error', failed));
      s = t;
    } else s = netConnect({ host, port });
    paceReads(s, this.opts.readSliceMs ?? 0.5, () => this.counters.readYields++);
    return s;
  }

  /** Connected, with the broker holding our subscriptions. */
  get connected(): boolean {
    return this.ready && this.client.connected;
  }

  /** Publish now if connected; false (and counted) when not: nothing piles up in memory while the broker is away. */
  publish(topic: string, payload: Uint8Array, o: PublishOptions = {}): boolean {
    if (!this.connected) {
      this.counters.notConnected++;
      return false;
    }
    this.counters.published++;
    this.counters.publishedBytes += payload.byteLength + topic.length;
    this.client.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), {
      qos: o.qos ?? 0,
      retain: o.retain ?? false,
      properties: o.expirySeconds !== undefined ? { messageExpiryInterval: Math.max(1, Math.min(0xffffffff, Math.ceil(o.expirySeconds))) } : undefined,
    });
    return true;
  }

  /** Publish and wait for the broker's PUBACK (QoS 1); rejects when not connected or refused. */
  publishAcked(topic: string, payload: Uint8Array, o: PublishOptions = {}): Promise<void> {
    if (!this.connected) return Promise.reject(new Error('station bus not connected'));
    this.counters.published++;
    this.counters.publishedBytes += payload.byteLength + topic.length;
    return new Promise((resolve, reject) =>
      this.client.publish(topic, Buffer.from(payload), { qos: 1, retain: o.retain ?? false, properties: o.expirySeconds !== undefined ? { messageExpiryInterval: Math.max(1, Math.ceil(o.expirySeconds)) } : undefined }, (err, packet) => {
        const rc = (packet as { reasonCode?: number } | undefined)?.reasonCode;
        if (err) reject(Object.assign(err, { reasonCode: (err as { code?: number }).code ?? rc }));
        else if (rc !== undefined && rc >= 0x80) reject(Object.assign(new Error(`broker refused the publish (reason ${rc})`), { reasonCode: rc }));
        else resolve();
      }),
    );
  }

  /** Wait until connected, at most `ms`; true if connected. */
  waitConnected(ms: number): Promise<boolean> {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => (this.off('connect', on), resolve(false)), ms);
      const on = () => (clearTimeout(t), resolve(true));
      this.once('connect', on);
    });
  }

  /** Close the connection. `say` is published (retained QoS 1) first when connected: a clean goodbye. */
  async end(say?: { topic: string; payload: Uint8Array }): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    // A broker that stopped answering must not hold up the lane's shutdown: 2 s each, then cut.
    const within = <T>(p: Promise<T>) => Promise.race([p, new Promise<void>((r) => setTimeout(r, 2000).unref())]);
    if (say && this.connected) await within(this.publishAcked(say.topic, say.payload, { retain: true }).catch(() => {}));
    let closed = false;
    await within(new Promise<void>((resolve) => this.client.end(false, {}, () => ((closed = true), resolve()))));
    if (!closed) this.client.end(true);
  }

  /** Drop the connection at once, without a DISCONNECT: the broker publishes the will (tests, kill -9 in-process). */
  async crash(): Promise<void> {
    this.ended = true;
    await new Promise<void>((resolve) => this.client.end(true, { reasonCode: 0x04 }, () => resolve()));
  }
}

/**
 * Read `s` at most about `sliceMs` per turn of the event loop. A peer flooding the bus then costs the
 * lane's loop that much at a time: once a turn has read for the slice, the stream is paused until the
 * next turn (setImmediate), and what is not read yet waits in the kernel and in the broker (its queue for
 * this client, Receive Maximum for QoS 1), not in the lane. Must be registered before the consumer's own
 * 'data' listener (MQTT.js pipes the stream as soon as the stream builder returns it): it then sees each
 * chunk (a TLS record: one MQTT packet from mosquitto) just before the consumer handles it, so a turn reads
 * at most the slice plus the one packet that found it spent.
 */
export function paceReads(s: Readable, sliceMs: number, onYield: () => void): void {
  let turnStartedAt = -1;
  let yielded = false;
  s.on('data', () => {
    const now = performance.now();
    if (turnStartedAt < 0) {
      turnStartedAt = now;
      setImmediate(() => {
        turnStartedAt = -1;
        if (yielded) {
          yielded = false;
          s.resume();
        }
      });
    } else if (!yielded && now - turnStartedAt >= sliceMs) {
      yielded = true;
      onYield();
      s.pause();
    }
  });
}
