// `gate supervisor add|remove|list`: the supervisors file the dashboard checks logins against. Passwords
// are read without echo from the terminal (twice), or as the first line of stdin when it is not a terminal
// (or with --password-stdin); only a salted scrypt hash is written, by atomic replacement, mode 0640.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { GateErrorCode, isGateError } from '../../protocol/errors.js';
import { ConfigError } from '../config/config.js';
import { loadGateConfig } from '../config/array-config.js';
import { formatSupervisors, hashPassword, parseSupervisors, PASSWORD_MAX, PASSWORD_MIN, SUPERVISOR_NAME, type SupervisorsDocument } from '../dashboard/supervisors.js';
import { replaceFile, writeFully } from '../platform/atomic-file.js';

interface FileOptions {
  file?: string;
  config?: string;
}

/** The file from --file, or the one the config's dashboard.control.supervisors names (a lane's or a gate array's). */
function supervisorsPath(o: FileOptions): string {
  if (o.file) return o.file;
  if (o.config) {
    const { config: c } = loadGateConfig(o.config);
    if (c.dashboard.control) return c.dashboard.control.supervisors;
    throw new ConfigError(`${o.config} has no dashboard.control.supervisors; give the file with --file`);
  }
  throw new ConfigError('which supervisors file? give --file FILE or --config lane.json (its dashboard.control.supervisors)');
}

async function readDoc(path: string, mustExist: boolean): Promise<SupervisorsDocument> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !mustExist) return { version: 1, supervisors: {} };
    throw new ConfigError(`cannot read supervisors file ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseSupervisors(text, path);
}

async function writeDoc(path: string, doc: SupervisorsDocument): Promise<void> {
  const bytes = Buffer.from(formatSupervisors(doc));
  try {
    // The mode is set on the temporary file before a byte is written: the hashes are never world-readable.
    await replaceFile(path, async (fh) => {
      await fh.chmod(0o640);
      await writeFully(fh, bytes);
    });
  } catch (e) {
    throw new ConfigError(`cannot write supervisors file ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); run as a user who may write it (root on a gate box)`);
  }
}

/** One line of stdin (the password), at most PASSWORD_MAX + 2 characters read. */
async function readStdinLine(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) {
    text += (chunk as Buffer).toString('utf8');
    if (text.includes('\n') || text.length > PASSWORD_MAX + 2) break;
  }
  return text.split(/\r?\n/)[0];
}

/** Ask on the terminal without echo. */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (s: string) => {
      for (const c of s) {
        if (c === '\r' || c === '\n') return done(), resolve(buf);
        if (c === '\u0003' || c === '\u0004') return done(), reject(new ConfigError('cancelled'));
        if (c === '\u007f' || c === '\b') buf = buf.slice(0, -1);
        else if (buf.length <= PASSWORD_MAX) buf += c;
      }
    };
    stdin.on('data', onData);
  });
}

async function newPassword(fromStdin: boolean): Promise<string> {
  let pw: string;
  if (fromStdin || !process.stdin.isTTY) pw = await readStdinLine();
  else {
    pw = await promptHidden('password: ');
    if ((await promptHidden('again: ')) !== pw) throw new ConfigError('the two passwords differ; nothing written');
  }
  if (pw.length < PASSWORD_MIN || pw.length > PASSWORD_MAX) throw new ConfigError(`a supervisor password has ${PASSWORD_MIN} to ${PASSWORD_MAX} characters; nothing written`);
  return pw;
}

/** Run a subcommand body; a failure is one line and exit code 2. */
async function oneLine(what: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (isGateError(e, GateErrorCode.Config)) {
      console.error(`gate supervisor ${what}: ${e.message.replace(/\s*\n\s*-?\s*/g, ' ')}`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

export function register(program: Command): void {
  const sup = program.command('supervisor').description('manage the supervisors who may log in to the dashboard and act on lanes');
  const fileOpts = (c: Command) => c.option('-f, --file <file>', 'the supervisors file').option('-c, --config <file>', 'lane config whose dashboard.control.supervisors names the file');

  fileOpts(sup.command('add <name>').description('add a supervisor (or, with --replace, set a new password); asks for the password without echo'))
    .option('--password-stdin', 'read the password from the first line of stdin', false)
    .option('--replace', 'replace the password of an existing supervisor', false)
    .action((name: string, o: FileOptions & { passwordStdin: boolean; replace: boolean }) =>
      oneLine('add', async () => {
        if (!SUPERVISOR_NAME.test(name)) throw new ConfigError(`"${name}" is not a supervisor name: 1-32 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit`);
        const path = supervisorsPath(o);
        const doc = await readDoc(path, false);
        if (Object.hasOwn(doc.supervisors, name) && !o.replace) throw new ConfigError(`supervisor ${name} is already in ${path}; add --replace to set a new password`);
        const hash = await hashPassword(await newPassword(o.passwordStdin));
        doc.supervisors[name] = { hash, added: new Date().toISOString() };
        await writeDoc(path, doc);
        console.log(`supervisor ${name} ${o.replace ? 'updated' : 'added'} in ${path} (a running gate reads it at the next login)`);
      }),
    );

  fileOpts(sup.command('remove <name>').description('remove a supervisor (their sessions end at their next action)')).action((name: string, o: FileOptions) =>
    oneLine('remove', async () => {
      const path = supervisorsPath(o);
      const doc = await readDoc(path, true);
      if (!Object.hasOwn(doc.supervisors, name)) throw new ConfigError(`no supervisor ${name} in ${path}`);
      delete doc.supervisors[name];
      await writeDoc(path, doc);
      console.log(`supervisor ${name} removed from ${path}`);
    }),
  );

  fileOpts(sup.command('list').description('list the supervisors (names and when they were added; never hashes)')).action((o: FileOptions) =>
    oneLine('list', async () => {
      const path = supervisorsPath(o);
      const doc = await readDoc(path, true);
      for (const [name, e] of Object.entries(doc.supervisors)) console.log(`${name}\t${e.added ?? ''}`);
    }),
  );
}
