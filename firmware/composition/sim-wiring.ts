// What the simulated station's wirings share (the station and each wiring module import it; it imports neither).
import type { LaneDirection } from '../../protocol/credential.js';
import type { VirtualClock } from '../../simulator/virtual-clock.js';
import type { CredentialSource } from '../../drivers/seams.js';
import type { RiderPresenter } from '../../simulator/station.js';
import type { Logger } from '../config/log.js';
import type { RideCodeVerifier } from '../verify/decision-core.js';

/** What a wiring gets to build one lane's side of a seam. */
export interface WiringContext {
  laneIndex: number;
  laneId: string;
  direction: LaneDirection;
  clock: VirtualClock;
  log: Logger;
  seed: number;
  /** Hold the station's virtual clock until this real-time work (a decode, a pty round trip) has finished. */
  hold(work: Promise<unknown>): void;
  /** Paced to the wall clock (wirings on real processes, such as pcsc, need it). */
  realtime?: boolean;
}

/** One lane's credential source in the simulator and the presenter that plays its riders. */
export interface SourceWiring {
  source: CredentialSource;
  presenter: RiderPresenter;
  /** Set by wirings whose riders show signed QR codes (the lane must verify them). */
  rideCodes?: RideCodeVerifier;
  close(): Promise<void>;
}
