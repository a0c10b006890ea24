// `gate broker-config`, `gate supervisor-key` and `gate station`: the station bus for an operator.
//   gate broker-config --station BJ-0101 --lanes 20 --out /etc/mosquitto/gate
//     → passwd (mosquitto $7$), acl, mosquitto.conf, clients/<user>.password (one per lane, view, back office)
//   gate supervisor-key --id sup-wang --out /etc/gate/supervisors [--password-file F]
//     → sup-wang.key (Ed25519, PEM); prints the lanes' and the view's config lines
//   gate station --config station-view.json
//     → the station view: every lane of the station from the broker, supervisor login, signed commands
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { rawPublicKeyB64 } from '../../protocol/station-bus.js';
import { ConfigError } from '../config/config.js';
import { createLogger } from '../config/log.js';
import { brokerConfig, mosquittoConf } from '../station/broker-config.js';
import { hashSupervisorPassword, startStationView, stationViewOptions } from '../station/view.js';
import { intArg } from './sim.js';

/** `--lanes 20` → L01..L20; `--lanes L01,L02,X7` → those. */
export function laneList(spec: string): string[] {
  if (/^\d+$/.test(spec)) {
    const n = Number(spec);
    if (n < 1 || n > 999) throw new ConfigError('--lanes: 1-999 lanes');
    return Array.from({ length: n }, (_, i) => `L${String(i + 1).padStart(2, '0')}`);
  }
  return spec.split(',').map((s) => s.trim()).filter(Boolean);
}

function fail(cmd: string, e: unknown): void {
  if (e instanceof ConfigError || (e instanceof Error && !(e instanceof TypeError))) {
    console.error(`gate ${cmd}: ${(e as Error).message}`);
    process.exitCode = 2;
    return;
  }
  throw e;
}

export function register(program: Command): void {
  program
    .command('broker-config')
    .description("write a station broker's mosquitto password file, ACL and config, and one password file per lane")
    .requiredOption('--station <id>', 'station id (lane.station in the lanes\' configs)')
    .requiredOption('--lanes <list>', 'lane ids (L01,L02,...) or a count (20 → L01..L20)')
    .requiredOption('--out <dir>', 'where to write passwd, acl, mosquitto.conf and clients/')
    .option('--views <names>', 'station view consoles (comma-separated; default one, view.<station>)')
    .option('--backoffice', 'also a back-office consumer that reads the whole station', false)
    .option('--port <n>', 'TLS listener port in mosquitto.conf', intArg('--port', 1, 65535), 8883)
    .option('--iterations <n>', 'PBKDF2 iterations per password (mosquitto_passwd uses 101)', intArg('--iterations', 1, 1_000_000), 1000)
    .action((o) => {
      try {
        const plan = { station: o.station as string, lanes: laneList(o.lanes), views: o.views ? String(o.views).split(',') : undefined, backoffice: o.backoffice === true };
        const cfg = brokerConfig([plan], { iterations: o.iterations });
        mkdirSync(join(o.out, 'clients'), { recursive: true });
        writeFileSync(join(o.out, 'passwd'), cfg.passwd, { mode: 0o600 });
        writeFileSync(join(o.out, 'acl'), cfg.acl, { mode: 0o644 });
        writeFileSync(join(o.out, 'mosquitto.conf'), mosquittoConf({ dir: o.out, port: o.port }));
        for (const [u, p] of cfg.credentials) writeFileSync(join(o.out, 'clients', `${u}.password`), p + '\n', { mode: 0o600 });
        console.log(`station ${plan.station}: ${cfg.credentials.size} users (${[...cfg.credentials.keys()].join(', ')})`);
        console.log(`wrote ${join(o.out, 'passwd')}, ${join(o.out, 'acl')}, ${join(o.out, 'mosquitto.conf')} and ${join(o.out, 'clients')}/<user>.password`);
        console.log('each lane: "station": { "broker": "mqtts://<station computer>:' + o.port + '", "ca": "<ca.pem>", "passwordFile": "<its clients/lane.… file>" }');
      } catch (e) {
        fail('broker-config', e);
      }
    });

  program
    .command('supervisor-key')
    .description('make a supervisor signing key (Ed25519) and print what the lanes and the station view need')
    .requiredOption('--id <id>', 'supervisor id, e.g. sup-wang')
    .requiredOption('--out <dir>', 'where to write <id>.key')
    .option('--password-file <file>', 'the supervisor\'s station view password (first line): prints its scrypt hash')
    .action((o) => {
      try {
        const { privateKey } = generateKeyPairSync('ed25519');
        mkdirSync(o.out, { recursive: true });
        const file = join(o.out, `${o.id}.key`);
        writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
        console.log(`wrote ${file}`);
        console.log(`lanes' station.supervisors: ${JSON.stringify({ [o.id]: { publicKey: rawPublicKeyB64(privateKey), may: ['set-mode', 'reset-emergency', 'station-emergency', 'reload', 'fare-mode'] } })}`);
        const pw = o.passwordFile ? readFileSync(o.passwordFile, 'utf8').split('\n')[0] : undefined;
        console.log(`station view supervisors: ${JSON.stringify({ [o.id]: { password: pw ? hashSupervisorPassword(pw) : '<gate supervisor-key --password-file>', keyFile: file } })}`);
      } catch (e) {
        fail('supervisor-key', e);
      }
    });

  program
    .command('station')
    .description('serve the station view: every lane of a station from its broker; supervisors log in; actions leave as signed commands')
    .requiredOption('-c, --config <file>', 'station view config (JSON)')
    .option('--port <n>', 'override the config\'s port (0: any free port)', intArg('--port', 0, 65535))
    .action(async (o) => {
      try {
        let raw: unknown;
        try {
          raw = JSON.parse(readFileSync(o.config, 'utf8'));
        } catch (e) {
          throw new ConfigError(`cannot read ${o.config}: ${(e as Error).message}`);
        }
        const opts = stationViewOptions(raw);
        if (o.port !== undefined) opts.port = o.port;
        opts.log = createLogger('info', { app: 'gate-station', station: opts.station });
        const view = await startStationView(opts);
        console.log(`Station view for ${opts.station}: ${view.url}  (Ctrl-C to stop)`);
        const stop = async () => {
          await view.close();
          process.exit(0);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      } catch (e) {
        fail('station', e);
      }
    });
}
