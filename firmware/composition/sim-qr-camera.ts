// `gate sim --qr camera`: a lane's QR riders reach it as rendered camera frames through the real
// zxing-wasm decoder worker and the real ride-code verifier. Each rider's phone (a virtual issuer app)
// mints a signed code at the moment they step up; the virtual camera renders it the way the gate camera
// would see the phone (seeded, realistic degradations) and the frames go into the camera driver.
// Decoding happens in real time while the station runs in virtual time, so each presentation holds the
// station's clock (ctx.hold) until its code has been decoded and handed to the lane.

import type { Credential, Direction } from '../../protocol/credential.js';
import { verifyTrustList } from '../../protocol/trust-list.js';
import { QrCamera, qrCameraConfigSchema } from '../../drivers/qr-camera.js';
import { SimulatedSource } from '../../drivers/simulated.js';
import { IssuerApps, seededRandom } from '../../simulator/virtual-phone.js';
import { qrMatrix, renderFrame, type Scene } from '../../simulator/virtual-camera.js';
import { RideCodes } from '../verify/ride-codes.js';
import type { SourceWiring, WiringContext } from './sim-wiring.js';

const W = 640, H = 480;
/** Frames the camera gets while the phone is held up; a frame that does not decode is followed by the next. */
const MAX_FRAMES = 6;

let shared: { apps: IssuerApps; rideCodes: RideCodes } | undefined;

/** Issuer apps and the trust list every lane of the simulated station verifies against (deterministic keys). */
export function simIssuers(): { apps: IssuerApps; rideCodes: RideCodes } {
  if (!shared) {
    const apps = new IssuerApps('gate-sim', { fromMs: Date.UTC(2022, 0, 1), toMs: Date.UTC(2030, 0, 1) });
    const r = verifyTrustList(apps.trustListDocument(), apps.backOfficeKeys());
    if (!r.ok) throw new Error(`simulated trust list refused: ${r.detail}`);
    shared = { apps, rideCodes: new RideCodes(r.list) };
  }
  return shared;
}

export async function cameraQrWiring(side: Direction, ctx: WiringContext): Promise<SourceWiring & { rideCodes: RideCodes }> {
  const { apps, rideCodes } = simIssuers();
  const rand = seededRandom(ctx.seed * 1000 + ctx.laneIndex * 2 + (side === 'entry' ? 0 : 1));
  const camera = new QrCamera(qrCameraConfigSchema.parse({ type: 'camera', side, frames: 'push', width: W, height: H, sameCodeHoldMs: 0 }), ctx.clock);
  // The camera keeps the first decode of each frame; wait for the one answering our frame.
  let waiting: ((texts: string[]) => void) | undefined;
  camera.onDecode((r) => waiting?.(r.texts));

  const scene = (): Scene => ({
    width: W, height: H,
    codePx: 150 + 110 * rand(), cx: 220 + 200 * rand(), cy: 170 + 140 * rand(),
    rotation: (rand() - 0.5) * 60, tiltX: (rand() - 0.5) * 30, tiltY: (rand() - 0.5) * 30,
    black: 10 + 40 * rand(), white: 180 + 60 * rand(), background: 40 + 80 * rand(),
    blur: rand() * 1.2, noise: rand() * 6, seed: Math.floor(rand() * 2 ** 31),
    ...(rand() < 0.2 ? { glare: { gx: rand() - 0.5, gy: rand() - 0.5, radius: 30 + 40 * rand(), strength: 30 + 60 * rand() } } : {}),
  });

  const show = async (text: string): Promise<void> => {
    const m = await qrMatrix(text);
    for (let i = 0; i < MAX_FRAMES; i++) {
      const texts = await new Promise<string[]>((resolve) => {
        waiting = resolve;
        camera.pushFrame(renderFrame(m, scene()));
      });
      waiting = undefined;
      if (texts.length) return;
    }
    ctx.log.warn({ side, lane: ctx.laneId }, `sim camera: code not decoded in ${MAX_FRAMES} frames`);
  };

  return {
    // Starting the decoder worker takes real time: hold the station's clock until it is up.
    source: {
      name: camera.name,
      start: (emit) => {
        const started = camera.start(emit);
        ctx.hold(started);
        return started;
      },
      stop: () => camera.stop(),
    },
    rideCodes,
    presenter: {
      present: (c: Credential) => {
        if (c.kind !== 'qr') throw new Error(`the camera wiring only shows QR codes, got ${c.kind}`);
        ctx.hold(show(apps.app(c.issuer).mint(c.account, ctx.clock.now(), { validitySeconds: 60 })));
      },
      // A code the gate cannot use: the rider shows some other QR code (a payment code, a web link).
      cardFault: () => ctx.hold(show('https://example.com/not-a-ride-code')),
    },
    close: async () => {},
  };
}

/**
 * `gate sim --qr signed` (the default): each QR rider's phone mints a real signed ride code and the lane
 * gets its text, verified by the real verifier and replay store — everything but the camera and decoder.
 */
export async function signedQrWiring(side: Direction, ctx: WiringContext): Promise<SourceWiring & { rideCodes: RideCodes }> {
  const { apps, rideCodes } = simIssuers();
  const source = new SimulatedSource(`sim-qr-${side}`, side, ctx.clock);
  return {
    source,
    rideCodes,
    presenter: {
      present: (c: Credential) => {
        if (c.kind !== 'qr') throw new Error(`the signed QR wiring only shows QR codes, got ${c.kind}`);
        source.showQrText(apps.app(c.issuer).mint(c.account, ctx.clock.now(), { validitySeconds: 60 }));
      },
      // The phone shows some other QR code (a payment code, a web link): the gate cannot use it.
      cardFault: () => source.showQrText('https://example.com/not-a-ride-code'),
    },
    close: async () => {},
  };
}
