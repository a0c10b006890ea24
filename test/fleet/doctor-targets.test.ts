// What `gate doctor` checks, read from a lane config with the drivers' own field names.
import { describe, expect, it } from 'vitest';
import { parseLaneConfig } from '../../firmware/config/config.js';
import { targetsFromConfig } from '../../firmware/operations/doctor.js';
import { SAMPLE_CONFIG } from '../../firmware/operations/pack.js';
import { barrierStats } from '../../firmware/operations/service.js';

describe('doctor targets from a lane config', () => {
  it('reads serial port, reader, camera, journal directory and back office from the sample config', () => {
    const t = targetsFromConfig(parseLaneConfig(SAMPLE_CONFIG));
    expect(t.serial).toEqual({ path: SAMPLE_CONFIG.drivers.barrier.path, baudRate: 115200 });
    expect(t.readers).toEqual({ nameContains: 'ACR1252' });
    expect(t.camera).toEqual({ device: '/dev/video0', format: undefined, input: undefined });
    expect(t.journalDir).toBe('/var/lib/gate/journal');
    expect(t.backofficeUrl).toBe('https://afc-backoffice.example/healthz');
    expect(t.listMaxAgeSeconds).toBe(86_400);
  });

  it('skips what a simulated config does not use, and follows camera input arguments and ffmpeg path', () => {
    expect(targetsFromConfig(parseLaneConfig({ lane: { id: 'L1' } }))).toEqual({ listMaxAgeSeconds: 86_400, backofficeUrl: undefined });
    const t = targetsFromConfig(
      parseLaneConfig({
        lane: { id: 'L1' },
        drivers: { sources: [{ type: 'camera', input: ['-re', '-i', 'clip.y4m'], ffmpeg: '/opt/ffmpeg/bin/ffmpeg' }] },
        lists: { type: 'http-sync', url: 'http://bo.local/lists', dir: '/var/lib/gate/lists' },
      }),
    );
    expect(t.camera?.input).toEqual(['-re', '-i', 'clip.y4m']);
    expect(t.ffmpeg).toBe('/opt/ffmpeg/bin/ffmpeg');
    expect(t.backofficeUrl).toBe('http://bo.local/lists');
  });
});

describe('barrier driver counters as metrics', () => {
  it('maps the serial barrier driver counters, ignoring what is missing or not a finite number', () => {
    expect(barrierStats({ badCrc: 2, badFrames: 1, retransmits: 3, realigns: 4, resyncs: 5, bytesDiscarded: 9, commandFailures: 0, framesIn: 100 })).toEqual({
      errors: { 'bad-crc': 2, 'bad-frame': 1, 'command-failed': 0, 'status-resync': 5 },
      retransmits: 3,
      resyncs: 4,
      bytesDiscarded: 9,
    });
    expect(barrierStats({ badCrc: Number.NaN })?.errors['bad-crc']).toBe(0);
    expect(barrierStats(undefined)).toBeUndefined();
  });
});
