import { describe, expect, it } from 'vitest';
import { createMetrics, type BarrierLinkStats } from '../../firmware/operations/metrics.js';

/** The value of one series in the exposition text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    if (line.slice(0, i) === series) return Number(line.slice(i + 1));
  }
  return undefined;
}

describe('metrics', () => {
  it('counts decisions by kind and reason, and observes latency per kind', async () => {
    const m = createMetrics({ processMetrics: false });
    m.decision('card', 'ok', 0.0003);
    m.decision('card', 'ok', 0.002);
    m.decision('qr', 'not-registered', 0.02);
    const t = await m.text();
    expect(sample(t, 'gate_decisions_total{kind="card",reason="ok",grant="true"}')).toBe(2);
    expect(sample(t, 'gate_decisions_total{kind="qr",reason="not-registered",grant="false"}')).toBe(1);
    expect(sample(t, 'gate_decision_duration_seconds_count{kind="card"}')).toBe(2);
    expect(sample(t, 'gate_decision_duration_seconds_bucket{le="0.0005",kind="card"}')).toBe(1);
    expect(sample(t, 'gate_decision_duration_seconds_bucket{le="0.0001",kind="card"}')).toBe(0);
    expect(sample(t, 'gate_decision_duration_seconds_bucket{le="1",kind="qr"}')).toBe(1);
  });

  it('computes list age at scrape time from the injected clock', async () => {
    let now = 1_000_000;
    const m = createMetrics({ processMetrics: false, now: () => now });
    m.watchLists(() => ({ version: 42, publishedAtMs: 1_000_000 - 90_000 }));
    expect(sample(await m.text(), 'gate_list_age_seconds')).toBe(90);
    now += 30_000;
    const t = await m.text();
    expect(sample(t, 'gate_list_age_seconds')).toBe(120);
    expect(sample(t, 'gate_list_version')).toBe(42);
  });

  it('pulls barrier link counters from a driver as differences, surviving a driver restart', async () => {
    const m = createMetrics({ processMetrics: false });
    const stats: BarrierLinkStats = { errors: { 'bad-crc': 2 }, retransmits: 1, resyncs: 2, bytesDiscarded: 7 };
    m.pullBarrierStats(() => stats);
    m.barrierError('timeout');
    let t = await m.text();
    expect(sample(t, 'gate_barrier_link_errors_total{error="bad-crc"}')).toBe(2);
    expect(sample(t, 'gate_barrier_link_errors_total{error="timeout"}')).toBe(1);
    expect(sample(t, 'gate_barrier_link_bytes_discarded_total')).toBe(7);
    stats.errors['bad-crc'] = 5;
    stats.resyncs = 3;
    t = await m.text();
    expect(sample(t, 'gate_barrier_link_errors_total{error="bad-crc"}')).toBe(5);
    expect(sample(t, 'gate_barrier_link_resyncs_total')).toBe(3);
    // Driver restarted: its counters begin again from zero; ours keep counting up.
    stats.errors['bad-crc'] = 1;
    stats.retransmits = 0;
    t = await m.text();
    expect(sample(t, 'gate_barrier_link_errors_total{error="bad-crc"}')).toBe(6);
    expect(sample(t, 'gate_barrier_link_retransmits_total')).toBe(1);
  });

  it('has one current lane mode and carries the lane labels on every series', async () => {
    const m = createMetrics({ processMetrics: false, labels: { lane: 'L1', station: 'XZM' } });
    m.mode('starting');
    m.mode('in-service');
    m.mode('in-service');
    m.readerFault('reader:acr', 'unplugged');
    m.cameraFault('camera:/dev/video0', 'no-frames');
    m.qrDecode(0.004, true);
    m.journalFsync(0.003);
    m.watchJournalBacklog(() => 17);
    m.syncFailure('unreachable');
    m.barrierLink(true);
    m.inputRejected('barrier', 'bad-crc');
    const t = await m.text();
    expect(sample(t, 'gate_lane_mode{mode="in-service",lane="L1",station="XZM"}')).toBe(1);
    expect(sample(t, 'gate_lane_mode{mode="starting",lane="L1",station="XZM"}')).toBe(0);
    expect(sample(t, 'gate_reader_faults_total{source="reader:acr",fault="unplugged",lane="L1",station="XZM"}')).toBe(1);
    expect(sample(t, 'gate_camera_faults_total{source="camera:/dev/video0",fault="no-frames",lane="L1",station="XZM"}')).toBe(1);
    expect(sample(t, 'gate_qr_decode_duration_seconds_count{lane="L1",station="XZM",result="found"}')).toBe(1);
    expect(sample(t, 'gate_journal_fsync_duration_seconds_count{lane="L1",station="XZM"}')).toBe(1);
    expect(sample(t, 'gate_journal_backlog_records{lane="L1",station="XZM"}')).toBe(17);
    expect(sample(t, 'gate_sync_failures_total{reason="unreachable",lane="L1",station="XZM"}')).toBe(1);
    expect(sample(t, 'gate_barrier_link_up{lane="L1",station="XZM"}')).toBe(1);
    expect(sample(t, 'gate_bad_input_total{where="barrier",error="bad-crc",lane="L1",station="XZM"}')).toBe(1);
  });

  it('exports process metrics (RSS) unless turned off, and two lanes in one process do not clash', async () => {
    const a = createMetrics({ labels: { lane: 'A' } });
    const b = createMetrics({ labels: { lane: 'B' } });
    expect(await a.text()).toMatch(/^gate_process_resident_memory_bytes\{lane="A"\} \d+$/m);
    expect(await b.text()).toMatch(/gate_process_resident_memory_bytes\{lane="B"\}/);
  });
});

describe('metrics on the decision path', () => {
  it('files a nonsense latency (clock step) as 0 and still counts the decision', async () => {
    const m = createMetrics({ processMetrics: false });
    m.decision('ticket', 'ok', -0.5);
    m.decision('ticket', 'ok', Number.NaN);
    const t = await m.text();
    expect(sample(t, 'gate_decisions_total{kind="ticket",reason="ok",grant="true"}')).toBe(2);
    expect(sample(t, 'gate_decision_duration_seconds_bucket{le="0.0001",kind="ticket"}')).toBe(2);
    expect(sample(t, 'gate_decision_duration_seconds_sum{kind="ticket"}')).toBe(0);
    expect(sample(t, 'gate_decision_duration_seconds_bucket{le="+Inf",kind="ticket"}')).toBe(2);
  });

  it('keeps a refused and a granted decision with the same reason apart, and resets with the registry', async () => {
    const m = createMetrics({ processMetrics: false });
    m.decision('qr', 'ok', 0.001, true);
    m.decision('qr', 'ok', 0.001, false);
    let t = await m.text();
    expect(sample(t, 'gate_decisions_total{kind="qr",reason="ok",grant="true"}')).toBe(1);
    expect(sample(t, 'gate_decisions_total{kind="qr",reason="ok",grant="false"}')).toBe(1);
    m.registry.resetMetrics();
    t = await m.text();
    expect(sample(t, 'gate_decisions_total{kind="qr",reason="ok",grant="true"}')).toBe(0);
    expect(sample(t, 'gate_decision_duration_seconds_count{kind="qr"}')).toBe(0);
  });
});
