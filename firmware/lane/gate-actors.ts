// The gate machine's edges: the callback actors that bring the barrier link's and the credential sources'
// events in (and own their start and stop), what a change of the rider screen sends to the board, and the
// trip to the decider whose answer comes back as an event.

import { registerByDay } from '../../protocol/policy-schedule.js';
import { fromCallback, type AnyActorRef } from 'xstate';
import type { BarrierCommand, Buzzer, Indicator } from '../../protocol/barrier.js';
import { REASONS, type ReasonCode } from '../../protocol/reasons.js';
import type { BarrierLink, CredentialSource } from '../../drivers/seams.js';
import { requestDecision, type DecideRequest } from './decider.js';
import type { GateContext } from './gate-facts.js';

/**
 * The barrier actor brings the link's events in and owns its start/stop. Commands go out by direct calls
 * on the injected BarrierLink from actions: an event to this actor per command cost ~25% of a passage cycle.
 */
export const barrierActor = fromCallback<{ type: 'none' }, { link: BarrierLink }>(({ sendBack, input }) => {
  let stopped = false;
  input.link.start((e) => {
    if (!stopped) sendBack(e);
  }).catch((err: Error) => sendBack({ type: 'LINK', up: false, detail: `barrier link failed to start: ${err.message}` }));
  return () => {
    stopped = true;
    void input.link.stop();
  };
});

export const sourceActor = fromCallback<{ type: 'none' }, { source: CredentialSource }>(({ sendBack, input }) => {
  let stopped = false;
  input.source.start((e) => {
    if (!stopped) sendBack(e);
  }).catch((err: Error) => sendBack({ type: 'SOURCE_FAULT', source: input.source.name, detail: err.message }));
  return () => {
    stopped = true;
    void input.source.stop();
  };
});

export type ShowParams = { reason: ReasonCode | 'idle'; indicator: Indicator; buzzer?: Buzzer };

/** Show a reason and an indicator: the context's record of the screen (when it changes) and the board's commands. */
export function screen(ctx: GateContext, p: ShowParams, open?: BarrierCommand) {
  // A grant shows its decision's reason (ok, or not-enforced / advise-register under the enforcement
  // schedule). An advise grant asks the rider to register by a day: the text, then the text with its day
  // (DISPLAY_DATE; a board built before it shows the first and answers the second NACK unsupported).
  const registerByMs = open ? ctx.current?.registerByMs : undefined;
  const reason = open && ctx.current?.grant ? ctx.current.reason : p.reason;
  const display: BarrierCommand = { type: 'DISPLAY', textId: reason === 'idle' ? 0 : REASONS[reason].id };
  const dated: BarrierCommand | undefined = registerByMs === undefined ? undefined : { type: 'DISPLAY_DATE', textId: REASONS['advise-register'].id, day: registerByDay(registerByMs) };
  const indicate: BarrierCommand = { type: 'INDICATE', indicator: p.indicator, buzzer: p.buzzer ?? 'off' };
  return {
    update: ctx.display !== reason || ctx.indicator !== p.indicator ? { display: reason, indicator: p.indicator } : undefined,
    send: () => {
      const link = ctx.env.barrier;
      if (open) link.send(open);
      link.send(display);
      if (dated) link.send(dated);
      link.send(indicate);
    },
  };
}

/** Ask the decider; its answer comes back to this lane as a DECIDED event (never after the lane stopped). */
export function ask(ctx: GateContext, self: AnyActorRef, req: DecideRequest): void {
  requestDecision(ctx.env.decider, req, (reply) => {
    if (self.getSnapshot().status === 'active') self.send(reply);
  });
}

