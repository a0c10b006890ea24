// Part of the station bench's fleet: many lanes' station-bus clients in one process (run at nice 5, so the
// broker and the measured lanes come first), each tapping 60 times a minute and sending its telemetry.
// The broker sees exactly what it sees from real lanes: one TLS connection per lane with its own
// credentials, the lane's subscriptions (QoS 1), one QoS 1 `used` message per tap with message expiry,
// retained state and counts once a minute. What the load lanes skip is the part that only loads this
// process: decoding the 19 peers' codes each tap brings (MQTT.js still reads and acknowledges each one),
// and a timer per lane (one timer per process fires every tap that is due, on a fixed Poisson schedule,
// so a late turn catches up instead of lowering the rate).
// STATION_FLEET: { url, ca, seconds, lanes: [{ station, lane, password }] }. Prints JSON lines:
// { connected } once every lane is up, { done, taps, due, telemetryBytes, publishedBytes, received, seconds, lag… } at the end.
import { setPriority } from 'node:os';
import { createHistogram } from 'node:perf_hooks';
import { silentLogger } from '../../firmware/config/log.js';
import { BusClient } from '../../firmware/station/bus.js';
import { laneUsername } from '../../firmware/station/config.js';
import { encodeLaneState, encodeStats, laneSubscriptions, laneTopic } from '../../protocol/station-bus.js';

const cfg = JSON.parse(process.env.STATION_FLEET ?? '{}') as { url: string; ca: string; seconds: number; lanes: { station: string; lane: string; password: string }[] };
setPriority(0, 5);
const lanes = cfg.lanes.map((l) => {
  const username = laneUsername(l.station, l.lane);
  const bus = new BusClient({
    url: cfg.url,
    ca: cfg.ca,
    username,
    password: l.password,
    clientId: username,
    keepaliveSeconds: 60,
    sessionExpirySeconds: 600,
    reconnectMs: 2000,
    subscriptions: laneSubscriptions(l.station, l.lane),
    noLocal: true,
    receiveMaximum: 20,
    log: silentLogger,
  });
  return { ...l, bus, used: laneTopic(l.station, l.lane, 'used'), next: 0 };
});
for (let i = 0; i < lanes.length; i++) {
  lanes[i].bus.start();
  if (i % 25 === 24) await new Promise((r) => setTimeout(r, 20));
}
const until = Date.now() + 180_000;
for (const l of lanes) if (!(await l.bus.waitConnected(Math.max(1, until - Date.now())))) throw new Error(`${l.station}/${l.lane} not connected: ${l.bus.lastError}`);
console.log(JSON.stringify({ connected: lanes.length }));

let stopped = false;
let taps = 0;
let due = 0;
let telemetryBytes = 0;
// How late each tap went out after it fell due (µs).
const lag = createHistogram();
const state = (lane: string) => encodeLaneState({ boot: 'a1b2c3d4e5f6', atMs: Date.now(), mode: 'normal', state: 'normal.ready', flaps: 'closed', direction: 'entry', listVersion: 1234, listAgeS: 42, link: 'up', readers: { [`pcsc:${lane}`]: 'ok', 'camera:/dev/video0': 'ok' }, open: {}, fireAlarm: false });
const stats = () => encodeStats({ fromMs: Date.now() - 60_000, toMs: Date.now(), granted: 57, refused: 3, byReason: { ok: 57, 'not-registered': 1, 'qr-expired': 1, 'tap-again': 1 } });
const received0 = lanes.reduce((a, l) => a + l.bus.counters.received, 0);
const published0 = lanes.reduce((a, l) => a + l.bus.counters.publishedBytes, 0);
// Code ids: this process's prefix and a counter, as hex (what `encodeUsed` would write for the same codes).
const prefix = `${process.pid.toString(16).padStart(8, '0')}`.slice(-8);
let serial = 0;
const t0 = performance.now();
const exp = () => -Math.log(1 - Math.random()) * 1000;
for (const l of lanes) l.next = t0 + exp();
const tick = () => {
  if (stopped) return;
  const now = performance.now();
  const wall = Date.now();
  for (const l of lanes) {
    if (l.next > now) continue;
    while (l.next <= now) {
      lag.record(Math.max(1, Math.round((now - l.next) * 1000)));
      l.next += exp();
      due++;
      const id = `alipay:${prefix}${(serial++).toString(16).padStart(8, '0')}`;
      const payload = Buffer.from(`{"v":1,"codes":[["${id}",${wall + 60_000}]]}`);
      if (l.bus.publish(l.used, payload, { qos: 1, expirySeconds: 60 })) taps++;
    }
  }
};
const tapTimer = setInterval(tick, 5);
const teleTimers = lanes.map((l) =>
  setTimeout(function telemetry() {
    if (stopped) return;
    for (const [leaf, p] of [['state', state(l.lane)], ['stats', stats()]] as const) {
      const topic = laneTopic(l.station, l.lane, leaf);
      if (l.bus.publish(topic, p, { qos: leaf === 'state' ? 1 : 0, retain: leaf === 'state' })) telemetryBytes += p.byteLength + topic.length;
    }
    teleTimers.push(setTimeout(telemetry, 60_000));
  }, Math.random() * 60_000),
);
setTimeout(() => {
  stopped = true;
  clearInterval(tapTimer);
  teleTimers.forEach(clearTimeout);
  const seconds = (performance.now() - t0) / 1000;
  const publishedBytes = lanes.reduce((a, l) => a + l.bus.counters.publishedBytes, 0) - published0;
  const received = lanes.reduce((a, l) => a + l.bus.counters.received, 0) - received0;
  console.log(JSON.stringify({ done: true, taps, due, telemetryBytes, publishedBytes, received, seconds, lanes: lanes.length, lagP50Ms: lag.percentile(50) / 1000, lagP99Ms: lag.percentile(99) / 1000, lagMaxMs: lag.max / 1000 }));
}, cfg.seconds * 1000);
process.once('SIGTERM', async () => {
  stopped = true;
  await Promise.allSettled(lanes.map((l) => l.bus.end()));
  process.exit(0);
});
