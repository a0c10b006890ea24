// What the dashboard asks of a simulated station (taps, QR codes, tailgating, fire alarm, barrier faults,
// obstructions): the requests' shapes and their handling. Each is logged with who asked and from where; the
// simulated world is not journaled.

import { z } from 'zod';
import { CREDENTIAL_KINDS, QR_ISSUERS, checkCredential, type Credential, type CredentialKind, type Direction, type QrIssuer } from '../../protocol/credential.js';
import type { Logger } from '../config/log.js';
import type { Actor } from './access.js';
import { parse, RequestError } from './requests.js';

/** Registration stories the simulator's tap form offers; "as-listed" leaves the lists as they are (typed numbers). */
export const TAP_STORIES = ['green', 'yellow', 'red', 'blocked', 'unregistered', 'as-listed'] as const;
export type TapStory = (typeof TAP_STORIES)[number];

export interface TapRequest {
  laneIndex: number;
  side: Direction;
  kind: CredentialKind;
  /** QR codes: the issuing app (a generated account). */
  issuer?: QrIssuer;
  /** A typed credential; when absent the simulator makes a fresh one of `kind`. */
  credential?: Credential;
  story: TapStory;
  /** Walk through if admitted (otherwise the lane times the passage out). */
  walk: boolean;
  /** Someone walks through right behind on the same opening. */
  tailgater: boolean;
}

/** What the dashboard may ask of a simulated station. Only present in simulator mode. */
export interface DashboardSim {
  /** Register the credential as the story says, then present it at the lane side. Resolves with its privacy-safe reference. */
  tap(req: TapRequest): Promise<{ ref: string }>;
  /** The station's fire-alarm input: on opens every lane; off clears it everywhere (lanes then need a reset). */
  fireAlarm(active: boolean): void;
  /** A barrier board fault code on one lane (0 clears it). */
  barrierFault(laneIndex: number, code: number): void;
  /** Something blocks the flaps of one lane. */
  obstruct(laneIndex: number, active: boolean): void;
}

const TapBody = z.object({
  lane: z.string().max(32),
  side: z.enum(['entry', 'exit']).optional(),
  kind: z.enum(CREDENTIAL_KINDS),
  issuer: z.enum(QR_ISSUERS).optional(),
  story: z.enum(TAP_STORIES),
  number: z.string().max(64).optional(),
  walk: z.boolean().default(true),
  tailgater: z.boolean().default(false),
});
const FireBody = z.object({ active: z.boolean() });
const FaultBody = z.object({ lane: z.string().max(32), code: z.number().int().min(0).max(255) });
const ObstructBody = z.object({ lane: z.string().max(32), active: z.boolean() });
const LaneBody = z.object({ lane: z.string().max(32) });

export interface SimulatorContext {
  sim: DashboardSim;
  actor: Actor;
  log: Logger;
  /** A lane's index by id; throws unknown-lane. */
  laneIndex(id: string): number;
  sides(i: number): Direction[];
  laneId(i: number): string;
}

/** POST /api/sim/…: one simulator control. */
export async function simulatorAction(path: string, body: unknown, c: SimulatorContext): Promise<unknown> {
  const { sim, actor } = c;
  const logged = (action: string, detail: Record<string, unknown>) =>
    c.log.info({ event: 'supervisor', supervisor: actor.supervisor, remote: actor.remote, action, ...detail }, `supervisor ${actor.supervisor} from ${actor.remote}: ${action}`);
  if (path === '/api/sim/tap' || path === '/api/sim/tailgate') {
    const tailgate = path === '/api/sim/tailgate';
    const b = tailgate ? { ...parse(LaneBody, body), kind: 'card' as const, story: 'green' as const, walk: true, tailgater: true, side: undefined, issuer: undefined, number: undefined } : parse(TapBody, body);
    const i = c.laneIndex(b.lane);
    const sides = c.sides(i);
    const side = b.side ?? sides[0];
    if (!sides.includes(side)) throw new RequestError(400, 'wrong-side', `lane ${b.lane} has no ${side} side (it serves ${sides.join(' and ')})`);
    const credential = b.number !== undefined && b.number.trim() !== '' ? typedCredential(b.kind, b.number.trim(), b.issuer) : undefined;
    logged(tailgate ? 'sim-tailgate' : 'sim-tap', { lane: b.lane, side, kind: b.kind, story: b.story });
    const r = await sim.tap({ laneIndex: i, side, kind: b.kind, issuer: b.issuer, credential, story: b.story, walk: b.walk, tailgater: b.tailgater });
    return { ok: true, lane: c.laneId(i), side, ref: r.ref };
  }
  if (path === '/api/sim/fire-alarm') {
    const b = parse(FireBody, body);
    logged('sim-fire-alarm', { active: b.active });
    sim.fireAlarm(b.active);
    return { ok: true };
  }
  if (path === '/api/sim/fault') {
    const b = parse(FaultBody, body);
    const i = c.laneIndex(b.lane);
    logged('sim-fault', { lane: b.lane, code: b.code });
    sim.barrierFault(i, b.code);
    return { ok: true };
  }
  if (path === '/api/sim/obstruct') {
    const b = parse(ObstructBody, body);
    const i = c.laneIndex(b.lane);
    logged('sim-obstruct', { lane: b.lane, active: b.active });
    sim.obstruct(i, b.active);
    return { ok: true };
  }
  throw new RequestError(404, 'not-found', `no such action: POST ${path}`);
}

/** A credential the supervisor typed; its shape is checked like any input from a reader. */
function typedCredential(kind: CredentialKind, number: string, issuer: QrIssuer | undefined): Credential {
  const c: Credential =
    kind === 'qr'
      ? { kind, issuer: issuer ?? 'yitongxing', account: number }
      : kind === 'ticket'
        ? { kind, ticketNumber: number.toUpperCase() }
        : { kind, cardNumber: number.replace(/\s+/g, '') };
  const check = checkCredential(c);
  if (!check.ok) throw new RequestError(400, 'bad-credential', `${check.field}: ${check.why}`);
  return c;
}
