// The camera's decode worker checks each code's signature with the lane's trust list (the compiled
// protocol/ride-code-check.js, so the camera is loaded from dist/, as the runtime runs it): codes arrive
// on the lane with the worker's verdict, a newer list reaches the worker (a revoked key is refused from
// the next frame on), a restarted camera gets the list again, and from TypeScript sources the worker only
// decodes and the lane checks everything itself.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { SourceEvent } from '../../drivers/seams.js';
import { QrCamera as QrCameraFromSources, qrCameraConfigSchema } from '../../drivers/qr-camera.js';
import { DecisionCore, MemoryUsedCodes } from '../../firmware/verify/decision-core.js';
import { MemoryLists } from '../../firmware/lists/list-provider.js';
import { policySchema } from '../../firmware/config/config.js';
import { RideCodes } from '../../firmware/verify/ride-codes.js';
import { verifyTrustList } from '../../protocol/trust-list.js';
import { qrMatrix, renderFrame } from '../../simulator/virtual-camera.js';
import { forgedCode, IssuerApps } from '../../simulator/virtual-phone.js';
import { waitUntil } from '../support/wait.js';

const COMPILED = new URL('../../dist/drivers/qr-camera.js', import.meta.url);
if (!existsSync(fileURLToPath(COMPILED))) throw new Error('dist/drivers/qr-camera.js is missing: run `npm run build` first (npm test does)');
const { QrCamera } = (await import(COMPILED.href)) as typeof import('../../drivers/qr-camera.js');

const W = 640, H = 480;
const T0 = Date.now();
const frame = async (text: string) => renderFrame(await qrMatrix(text), { width: W, height: H, codePx: 220, cx: 320, cy: 240, rotation: 5, tiltX: 3, tiltY: -3, black: 25, white: 215, background: 70, blur: 0.4, noise: 2, seed: 5 });

const cameras: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(cameras.splice(0).map((c) => c.stop()));
});

function pushCamera(Impl: typeof QrCamera) {
  const cam = new Impl(qrCameraConfigSchema.parse({ type: 'camera', frames: 'push', width: W, height: H, sameCodeHoldMs: 0 }));
  cameras.push(cam);
  const presented: Extract<SourceEvent, { type: 'PRESENTED' }>['presented'][] = [];
  const start = () => cam.start((e) => void (e.type === 'PRESENTED' && presented.push(e.presented)));
  /** Push a frame and wait for the code it shows. */
  const show = async (text: string) => {
    const n = presented.length;
    cam.pushFrame(await frame(text));
    await waitUntil(() => presented.length > n, 10_000);
    const p = presented[n];
    if (p.kind !== 'qr-text' || p.text !== text) throw new Error(`expected ${text}, got ${JSON.stringify(p)}`);
    return p;
  };
  return { cam, start, show };
}

describe('ride code signatures checked on the decode worker', () => {
  it('codes arrive with the worker verdict, the lane takes it; a newer list reaches the worker; a restart gets it again', async () => {
    const apps = new IssuerApps('worker-check');
    const app = apps.app('alipay');
    app.addKey(2, T0 - 3600_000, T0 + 86_400_000);
    const r1 = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r1.ok) throw new Error(r1.detail);
    const rideCodes = new RideCodes(r1.list);
    const lists = new MemoryLists(T0);
    for (const a of ['wk_1', 'wk_2', 'wk_3', 'wk_4']) lists.allowlist.set(`qr:alipay:${a}`, 'green');
    const core = new DecisionCore('bidirectional', policySchema.parse({ antiPassbackSeconds: 0 }), { lists, usedCodes: new MemoryUsedCodes(), rideCodes });

    const { cam, start, show } = pushCamera(QrCamera);
    rideCodes.shareWith([cam]); // before start: the worker gets the list as it starts
    await start();
    expect(cam.checksInWorker).toBe(true);

    const good = await show(app.mint('wk_1', T0, { keyId: 2 }));
    expect(good.kind === 'qr-text' && good.precheck).toMatchObject({ trustId: rideCodes.share().trustId, verdict: { ok: true, code: { issuer: 'alipay', account: 'wk_1' } } });
    expect(core.decide({ presented: good, side: 'entry', nowMs: T0 + 1000 })).toMatchObject({ grant: true, reason: 'ok' });
    expect(rideCodes.prechecks).toEqual({ used: 1, stale: 0 });

    const forged = await show(forgedCode('alipay', 'wk_2', T0));
    expect(forged.kind === 'qr-text' && forged.precheck?.verdict).toMatchObject({ ok: false, reason: 'qr-bad-signature' });
    expect(core.decide({ presented: forged, side: 'entry', nowMs: T0 + 1000 })).toMatchObject({ grant: false, reason: 'qr-bad-signature' });

    // Key 2 revoked in a newer list: the next frame's verdict is already the new list's.
    const pending = app.mint('wk_3', T0, { keyId: 2 });
    app.key(2).revoked = true;
    const r2 = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r2.ok) throw new Error(r2.detail);
    rideCodes.setTrustList(r2.list);
    const revoked = await show(pending);
    expect(revoked.kind === 'qr-text' && revoked.precheck).toMatchObject({ trustId: rideCodes.share().trustId, verdict: { ok: false, reason: 'qr-revoked-key' } });
    expect(core.decide({ presented: revoked, side: 'entry', nowMs: T0 + 1000 })).toMatchObject({ grant: false, reason: 'qr-revoked-key' });
    // A verdict from before the update (the code read just before it) is not taken: checked again on the lane.
    expect(core.decide({ presented: { ...good, text: pending, precheck: good.kind === 'qr-text' ? good.precheck : undefined }, side: 'entry', nowMs: T0 + 1000 })).toMatchObject({ grant: false, reason: 'qr-revoked-key' });
    expect(rideCodes.prechecks).toEqual({ used: 3, stale: 1 });

    // Stopped and started again (a new worker): it gets the list held now.
    await cam.stop();
    await start();
    const again = await show(app.mint('wk_4', T0, { keyId: 1 }));
    expect(again.kind === 'qr-text' && again.precheck?.trustId).toBe(rideCodes.share().trustId);
    expect(core.decide({ presented: again, side: 'entry', nowMs: T0 + 1000 })).toMatchObject({ grant: true });
    expect(cam.counters.prechecked).toBe(4);
  });

  it('from TypeScript sources the worker only decodes: codes come without a verdict and the lane checks them', async () => {
    const apps = new IssuerApps('worker-check-ts');
    const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r.ok) throw new Error(r.detail);
    const rideCodes = new RideCodes(r.list);
    const { cam, start, show } = pushCamera(QrCameraFromSources);
    rideCodes.shareWith([cam]);
    await start();
    expect(cam.checksInWorker).toBe(false);
    const p = await show(apps.app('cmb').mint('ts_1', T0));
    expect(p.kind === 'qr-text' && p.precheck).toBe(undefined);
    expect(p.kind === 'qr-text' && rideCodes.verify(p.text, T0 + 1000, p.precheck)).toMatchObject({ ok: true });
    expect(rideCodes.prechecks).toEqual({ used: 0, stale: 0 });
  });
});
