// The house's shape, checked in `npm test`: no import cycles, no import a folder README forbids, every
// source folder under a README rule, no source file over 500 lines without its reason. The second block
// plants a cycle and a forbidden import in a scratch tree to show the check can fail.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { importProblems } from '../support/import-graph.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('the import graph of protocol/, drivers/, firmware/, simulator/', () => {
  const p = importProblems(root);

  it('reads the whole tree', () => {
    expect(p.files).toBeGreaterThan(60);
  });
  it('has no import cycle', () => {
    expect(p.cycles.map((c) => c.join(' -> '))).toEqual([]);
  });
  it('has no import a folder README forbids', () => {
    expect(p.forbidden.map((f) => `${f.from} imports ${f.to} (rule of ${f.room}README.md)`)).toEqual([]);
  });
  it('has a README rule over every source folder', () => {
    expect(p.unruled).toEqual([]);
  });
  it('has no file over 500 lines without a stated reason', () => {
    expect(p.long.map((l) => `${l.file}: ${l.lines} lines`)).toEqual([]);
  });
});

describe('the check itself', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'imports-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const put = (path: string, text: string) => {
    mkdirSync(dirname(join(scratch, path)), { recursive: true });
    writeFileSync(join(scratch, path), text);
  };
  put('protocol/README.md', 'May import: `protocol/`\n');
  put('protocol/a.ts', "import { b } from './b.js';\nexport const a = 1;\n");
  put('protocol/b.ts', "import { a } from './a.js';\nimport { f } from '../firmware/lane/f.js';\nexport const b = 2;\n");
  put('firmware/lane/README.md', 'May import: `protocol/`\n');
  put('firmware/lane/f.ts', "export const f = 3;\nexport const g = () => import('../lists/l.js');\n");
  put('firmware/lists/l.ts', 'export const l = 4;\n');
  put('firmware/lists/long.ts', 'export const x = 1;\n'.repeat(501));
  const p = importProblems(scratch);

  it('finds a planted cycle', () => {
    expect(p.cycles).toEqual([['protocol/a.ts', 'protocol/b.ts']]);
  });
  it('finds imports the rules forbid, dynamic ones too', () => {
    expect(p.forbidden.map((f) => `${f.from} -> ${f.to}`).sort()).toEqual(['firmware/lane/f.ts -> firmware/lists/l.ts', 'protocol/b.ts -> firmware/lane/f.ts']);
  });
  it('finds a folder with no rule and a long file', () => {
    expect(p.unruled).toEqual(['firmware/lists']);
    expect(p.long).toEqual([{ file: 'firmware/lists/long.ts', lines: 502 }]);
  });
});
