// `gate sim --reader pcsc`: one lane's card taps go through real pcscd + vpcd. A private pcscd (two vpcd
// slots: entry and exit) is started for the run; every tap of a simulated rider becomes a virtual card
// (T-Union card, phone, ticket; a torn tap is a card pulled away after its first APDU) in the field of
// the lane side's slot, read by the real PC/SC driver. Needs --realtime: pcscd's taps take real time.
import { PcscReader, pcscReaderConfigSchema } from '../../drivers/pcsc-reader.js';
import type { Credential, Direction } from '../../protocol/credential.js';
import { startPcscd, type PrivatePcscd } from '../../simulator/pcscd.js';
import { virtualCard, type VirtualCardBuilder } from '../../simulator/virtual-card.js';
import { ConfigError } from '../config/config.js';
import type { SourceWiring, WiringContext } from './sim-wiring.js';

let shared: { pcscd: Promise<PrivatePcscd>; users: number } | undefined;

function cardFor(c: Credential): VirtualCardBuilder | undefined {
  switch (c.kind) {
    case 'card':
      return virtualCard().tUnion({ serial: c.cardNumber, expiry: 20991231, cardType: c.cardType, balanceFen: c.balanceFen });
    case 'phone-nfc':
      return virtualCard().phone({ serial: c.cardNumber, expiry: 20991231, balanceFen: c.balanceFen });
    case 'ticket':
      return virtualCard().ticket({ ticketNumber: c.ticketNumber, validUntil: 20991231 });
    default:
      return undefined;
  }
}

export async function pcscWiring(side: Direction, ctx: WiringContext & { realtime?: boolean }): Promise<SourceWiring> {
  if (ctx.laneIndex !== 0) throw new ConfigError('--reader pcsc drives one lane (a private pcscd has two vpcd slots: entry and exit); use --lanes 1');
  if (ctx.realtime === false) throw new ConfigError('--reader pcsc needs --realtime (pcscd and the virtual cards run on the wall clock)');
  if (!shared) {
    shared = { pcscd: startPcscd({ namePrefix: 'Sim Reader' }), users: 0 };
  }
  shared.users++;
  const pcscd = await shared.pcscd;
  process.env.PCSCLITE_CSOCK_NAME = pcscd.socket;
  const slot = pcscd.readers[side === 'entry' ? 0 : 1];
  const source = new PcscReader(pcscReaderConfigSchema.parse({ reader: slot.name, side, retryMs: 200 }), ctx.clock, undefined, `reader:pcsc:${side}`);
  // One card at a time in a slot's field: taps queue behind each other as riders do.
  let queue = Promise.resolve();
  const tap = (card: VirtualCardBuilder) => {
    queue = queue.then(async () => {
      const t = card.tap({ port: slot.port, leaveAfterIdleMs: 120 });
      await t.done;
    });
  };
  return {
    source,
    presenter: {
      present: (c) => {
        const card = cardFor(c);
        if (card) tap(card);
      },
      cardFault: () => tap(virtualCard().tUnion({ serial: '3100000000000000001', expiry: 20991231 }).withTearing(1)),
    },
    close: async () => {
      await queue;
      if (shared && --shared.users === 0) {
        const p = shared.pcscd;
        shared = undefined;
        await (await p).stop();
      }
    },
  };
}
