// The `gate run --stdin` console: a technician drives simulated sources and operator events by typing.
// Bad lines get a message, never a crash. For a gate array each line starts with the lane's id; mode, fire,
// reset and view without one act on every lane (a fire alarm opens every lane of the box).
import { createInterface } from 'node:readline';
import { SimulatedSource } from '../../drivers/simulated.js';
import { checkCredential, credentialRef, type Credential, type Direction } from '../../protocol/credential.js';
import type { Lane } from '../lane/lane.js';
import type { OperatorMode } from '../lane/gate-machine.js';

export const HELP = `commands:
  entry|exit card <19 digits>        tap a Yikatong card on the simulated reader of that side
  entry|exit phone <19 digits>       tap a phone emulating a card
  entry|exit ticket <number>         tap a commemorative ticket
  entry|exit qr <issuer> <account>   show a (pre-verified) QR ride code
  entry|exit qrtext <text>           show QR text for the gate to verify
  mode normal|free|maintenance|closed
  fire on|off    reset    view    help`;

const ARRAY_HELP = `a gate array: start a line with the lane's id ("L02 entry card 3104…"); mode, fire, reset and view without one act on every lane\n${HELP}`;

/** One console command on one lane. Throws nothing: errors are printed. */
export function benchCommand(lane: Lane, w: readonly string[], help = HELP): void {
  const sim = (side: Direction) => lane.sources.find((s): s is SimulatedSource => s instanceof SimulatedSource && s.side === side);
  const [a, b, c, d] = w;
  try {
    if (a === 'entry' || a === 'exit') {
      const src = sim(a);
      if (!src) return void console.error(`no simulated ${a} source in ${lane.id}'s config`);
      if (b === 'qrtext') return src.showQrText(w.slice(2).join(' '));
      const cred = (b === 'card' ? { kind: 'card', cardNumber: c } : b === 'phone' ? { kind: 'phone-nfc', cardNumber: c } : b === 'ticket' ? { kind: 'ticket', ticketNumber: c } : b === 'qr' ? { kind: 'qr', issuer: c, account: d } : undefined) as Credential | undefined;
      if (!cred) return void console.error(`unknown credential kind "${b}"\n${help}`);
      const chk = checkCredential(cred);
      if (!chk.ok) console.error(`warning: ${chk.field}: ${chk.why} (sent anyway: the gate must refuse it)`);
      src.present(cred);
      console.error(`presented ${credentialRef(cred)} at ${lane.id} ${a}`);
    } else if (a === 'mode' && ['normal', 'free', 'maintenance', 'closed'].includes(b)) lane.send({ type: 'SET_MODE', mode: b as OperatorMode });
    else if (a === 'fire') lane.send({ type: 'FIRE_ALARM', active: b === 'on' });
    else if (a === 'reset') lane.send({ type: 'RESET_EMERGENCY' });
    else if (a === 'view') console.log(JSON.stringify(lane.view()));
    else if (a) console.error(help);
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
  }
}

/** The console for one lane. */
export function benchControl(lane: Lane): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => benchCommand(lane, line.trim().split(/\s+/)));
}

/** The console for a gate array: "<lane id> <command>", or a box-wide mode/fire/reset/view. */
export function arrayBenchControl(lanes: readonly Lane[]): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => arrayBenchCommand(lanes, line.trim().split(/\s+/)));
}

export function arrayBenchCommand(lanes: readonly Lane[], w: readonly string[]): void {
  if (w[0] === '' || w.length === 0) return;
  const lane = lanes.find((l) => l.id === w[0]);
  if (lane) return benchCommand(lane, w.slice(1), ARRAY_HELP);
  if (['mode', 'fire', 'reset', 'view'].includes(w[0])) for (const l of lanes) benchCommand(l, w, ARRAY_HELP);
  else console.error(`no lane "${w[0]}" (lanes: ${lanes.map((l) => l.id).join(', ')})\n${ARRAY_HELP}`);
}
