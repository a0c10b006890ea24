import type { BenchReport } from './report.js';
export async function run(_r: BenchReport): Promise<void> {}
