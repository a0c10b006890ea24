// The lane README's chart is the machine's: regenerated here, it must match the checked-in copy. And the
// machine names what it does: no inline guard or action anywhere in its definition.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AnyStateNode } from 'xstate';
import { chartSection, guardText, machineChart, readmePath, readmeSection, REGENERATE } from '../../firmware/lane/chart.js';
import { gateMachine } from '../../firmware/lane/gate-machine.js';

function nodes(n: AnyStateNode = gateMachine.root): AnyStateNode[] {
  return [n, ...Object.values(n.states).flatMap((c) => nodes(c))];
}

describe('lane chart', () => {
  it('firmware/lane/README.md holds the chart of the machine as it is', () => {
    const readme = readFileSync(readmePath(), 'utf8');
    const section = readmeSection(readme);
    expect(section, `firmware/lane/README.md has no chart markers; add them, then run: ${REGENERATE}`).toBeDefined();
    expect(section === chartSection(), `the chart in firmware/lane/README.md is out of date; run: ${REGENERATE}`).toBe(true);
  });

  it('draws every state, and every state change with its event and guard', () => {
    const chart = machineChart();
    for (const n of nodes().slice(1)) expect(chart).toMatch(new RegExp(`\\b${n.key}\\b`));
    expect(chart).toContain('anywhere --> emergency : FIRE_ALARM [fireAlarmOn]');
    expect(chart).toContain('ready --> outOfService : always [belongsIn(outOfService)]<br/>LINK [linkLost]');
    expect(chart).toContain('verifying --> granted : DECIDED [decidedGrant]');
    expect(chart).toContain('verifying --> denied : DECIDED [decidedRefusal]<br/>after decision');
    expect(chart).toContain('emergency --> normal : RESET_EMERGENCY [inputsCleared && belongsIn(normal)]');
    // Mermaid ends a label at ':' or ';'.
    for (const line of chart.split('\n').filter((l) => l.includes(' : '))) expect(line.split(' : ')[1]).not.toMatch(/[:;]/);
  });

  it('names every guard and action (no inline closures in the definition)', () => {
    const { guards, actions } = gateMachine.implementations;
    const named = (g: unknown): boolean => {
      if (typeof g === 'string') return g in guards;
      if (typeof g === 'function') return ((g as { guards?: unknown[] }).guards ?? [null]).every(named);
      return typeof g === 'object' && g !== null && (g as { type: string }).type in guards;
    };
    // `after` adds XState's own raise (entry) and cancel (exit) for its timer.
    const timer = (a: unknown) => typeof a === 'function' && ['xstate.raise', 'xstate.cancel'].includes((a as { type?: string }).type ?? '');
    const namedAction = (a: unknown) =>
      typeof a === 'string' ? a in actions : typeof a === 'object' && a !== null && (a as { type: string }).type in actions;
    const bad: string[] = [];
    for (const n of nodes()) {
      for (const a of [...n.entry, ...n.exit]) if (!namedAction(a) && !timer(a)) bad.push(`${n.id} entry/exit: ${String(a)}`);
      const all = [...(n.always ?? []), ...[...n.transitions.values()].flat()];
      for (const t of all) {
        if (t.guard !== undefined && !named(t.guard)) bad.push(`${n.id} ${t.eventType}: guard ${guardText(t.guard)}`);
        for (const a of t.actions) if (!namedAction(a)) bad.push(`${n.id} ${t.eventType}: action ${String(a)}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
