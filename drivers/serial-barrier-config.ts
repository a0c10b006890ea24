// The serial barrier link's settings (the lane config's `drivers.barrier` section when `type` is "serial")
// and its counters: what an operator sets and what metrics read, apart from the link's machinery.

import { z } from 'zod';
import type { BarrierLinkCounters } from './seams.js';

const ms = (def: number, min = 1) => z.number().int().min(min).max(600_000).default(def);

/** The lane config's `drivers.barrier` section when `type` is "serial". */
export const serialBarrierConfigSchema = z
  .object({
    type: z.literal('serial'),
    /** Device path, e.g. /dev/ttyUSB0, /dev/serial/by-id/..., or a pty link. */
    path: z.string().min(1),
    baudRate: z.number().int().min(300).max(4_000_000).default(115200),
    dataBits: z.union([z.literal(7), z.literal(8)]).default(8),
    parity: z.enum(['none', 'even', 'odd']).default('none'),
    stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
    /**
     * RS-485 half duplex. `rtsToggle`: the driver raises RTS while it sends (adapters without automatic
     * direction control). The runtime ignores its own frames heard back on a 2-wire bus.
     */
    rs485: z
      .object({ enabled: z.boolean().default(false), rtsToggle: z.boolean().default(false) })
      .strict()
      .default({ enabled: false, rtsToggle: false }),
    /** Wait this long for ACK/NACK before sending the same frame again (doubling per retry, up to 8×). */
    ackTimeoutMs: ms(40),
    /** Retransmissions after the first send; then the command is reported failed. */
    retries: z.number().int().min(0).max(20).default(3),
    heartbeatMs: ms(100),
    /** No valid frame from the board for this long: link down, lane out of service. */
    silenceMs: ms(500),
    /** Retry period for opening a missing or unplugged device. */
    reopenMs: ms(250),
    /** Commands waiting behind the one in flight, or for the link; beyond this they fail at once. */
    queueLimit: z.number().int().min(1).max(10_000).default(64),
    /**
     * A command sent while the link is not up (port not open yet, board not answering, status resync under
     * way) waits for it this long, in order, then fails. An OPEN that authorises passengers never waits:
     * opening late would let through someone the lane already gave up on.
     */
    linkWaitMs: ms(5000),
  })
  .strict();

export type SerialBarrierConfig = z.infer<typeof serialBarrierConfigSchema>;
export type SerialBarrierConfigInput = z.input<typeof serialBarrierConfigSchema>;

/** The seam's counters plus what this driver alone knows (sessions, lost acks, waiting for the link). */
export interface SerialBarrierCounters extends BarrierLinkCounters {
  /** every ack of a command was lost, and the board said it had executed it: settled as done */
  ackLostExecuted: number;
  /** every ack of a command was lost, and the board said it had not executed it: COMMAND_FAILED, executed false */
  ackLostNotExecuted: number;
  /** every ack of a command was lost, and the board could not say (no answer, restarted, no SESSION support) */
  ackLostUnknown: number;
  /** SESSION answered `fresh`: the board started our session (first contact, or it had restarted) */
  freshSessions: number;
  /** commands that waited for the link longer than linkWaitMs and failed */
  linkWaitExpired: number;
}
