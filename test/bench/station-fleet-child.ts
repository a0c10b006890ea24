// Part of the station bench's fleet: many lanes' station links in one process (run at nice 5, so the
// broker and the measured lanes come first), each tapping 60 times a minute and sending its telemetry.
// STATION_FLEET: { url, ca, seconds, lanes: [{ station, lane, password }] }. Prints JSON lines:
// { connected } once every lane is up, { done, taps, telemetryBytes, publishedBytes, seconds } at the end.
import { randomBytes } from 'node:crypto';
import { setPriority } from 'node:os';
import { systemClock } from '../../drivers/seams.js';
import { silentLogger } from '../../firmware/config/log.js';
import { laneUsername } from '../../firmware/station/config.js';
import { LaneStationLink } from '../../firmware/station/lane-link.js';
import { encodeLaneState, encodeStats, laneTopic } from '../../protocol/station-bus.js';

const cfg = JSON.parse(process.env.STATION_FLEET ?? '{}') as { url: string; ca: string; seconds: number; lanes: { station: string; lane: string; password: string }[] };
setPriority(0, 5);
const links = cfg.lanes.map((l) => ({
  ...l,
  link: new LaneStationLink({
    settings: { station: l.station, lane: l.lane, url: cfg.url, ca: cfg.ca, username: laneUsername(l.station, l.lane), password: l.password, keepaliveSeconds: 60, sessionExpirySeconds: 600, reconnectMs: 2000, perLaneCap: 4096, maxLanes: 64, stateEveryMs: 60_000, statsEveryMs: 60_000, supervisors: new Map(), maxTtlMs: 120_000, rememberMax: 10_000, clampMs: 660_000 },
    clock: systemClock,
    log: silentLogger,
  }),
}));
for (let i = 0; i < links.length; i++) {
  links[i].link.start();
  if (i % 25 === 24) await new Promise((r) => setTimeout(r, 20));
}
const until = Date.now() + 180_000;
for (const l of links) if (!(await l.link.bus.waitConnected(Math.max(1, until - Date.now())))) throw new Error(`${l.station}/${l.lane} not connected: ${l.link.bus.lastError}`);
console.log(JSON.stringify({ connected: links.length }));

let stopped = false;
let taps = 0;
let telemetryBytes = 0;
const timers: ReturnType<typeof setTimeout>[] = [];
const state = (lane: string) => encodeLaneState({ boot: 'a1b2c3d4e5f6', atMs: Date.now(), mode: 'normal', state: 'normal.ready', flaps: 'closed', direction: 'entry', listVersion: 1234, listAgeS: 42, link: 'up', readers: { [`pcsc:${lane}`]: 'ok', 'camera:/dev/video0': 'ok' }, open: {}, fireAlarm: false });
const stats = () => encodeStats({ fromMs: Date.now() - 60_000, toMs: Date.now(), granted: 57, refused: 3, byReason: { ok: 57, 'not-registered': 1, 'qr-expired': 1, 'tap-again': 1 } });
const published0 = links.reduce((a, l) => a + l.link.bus.counters.publishedBytes, 0);
const t0 = performance.now();
for (const l of links) {
  const tap = () => {
    if (stopped) return;
    l.link.usedCodes.markUsed(`alipay:${randomBytes(8).toString('hex')}`, Date.now() + 60_000);
    taps++;
    timers.push(setTimeout(tap, -Math.log(1 - Math.random()) * 1000));
  };
  const telemetry = () => {
    if (stopped) return;
    for (const [leaf, p] of [['state', state(l.lane)], ['stats', stats()]] as const) {
      const topic = laneTopic(l.station, l.lane, leaf);
      if (l.link.bus.publish(topic, p, { qos: leaf === 'state' ? 1 : 0, retain: leaf === 'state' })) telemetryBytes += p.byteLength + topic.length;
    }
    timers.push(setTimeout(telemetry, 60_000));
  };
  timers.push(setTimeout(tap, Math.random() * 1000));
  timers.push(setTimeout(telemetry, Math.random() * 60_000));
}
setTimeout(() => {
  stopped = true;
  timers.forEach(clearTimeout);
  const seconds = (performance.now() - t0) / 1000;
  const publishedBytes = links.reduce((a, l) => a + l.link.bus.counters.publishedBytes, 0) - published0;
  console.log(JSON.stringify({ done: true, taps, telemetryBytes, publishedBytes, seconds, lanes: links.length }));
}, cfg.seconds * 1000);
process.once('SIGTERM', async () => {
  stopped = true;
  await Promise.allSettled(links.map((l) => l.link.stop()));
  process.exit(0);
});
