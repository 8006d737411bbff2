// The statistics a simulation's page has sampled since it opened (`GET …/{name}/stats` every
// 5 s), as series per node for the charts. The API gives network counters (bytes since the
// node started); the charts show rates, so each rate is the difference to the sample before.
import type { NodeStats } from './sim';

/** About 15 minutes at one sample every 5 s: older samples drop off the left of the charts. */
export const MAX_SAMPLES = 180;

export interface NodeSeries {
	cpu: (number | null)[];
	memory: (number | null)[];
	rx: (number | null)[];
	tx: (number | null)[];
}

interface Counters {
	time: number;
	rx: number;
	tx: number;
}

/** Column-oriented samples: `times[i]` (Unix seconds) belongs to index `i` of every series. */
export class StatsHistory {
	times: number[] = [];
	nodes = new Map<string, NodeSeries>();
	private last = new Map<string, Counters>();

	constructor(private readonly max = MAX_SAMPLES) {}

	/** Add one sample taken at `time` (Unix seconds); nodes missing from it get gaps. */
	add(time: number, samples: NodeStats[]): void {
		const index = this.times.length;
		this.times.push(time);
		const seen = new Set<string>();
		for (const s of samples) {
			seen.add(s.name);
			const series = this.series(s.name, index);
			series.cpu.push(s.cpuPercent);
			series.memory.push(s.memoryBytes);
			const before = this.last.get(s.name);
			const span = before ? time - before.time : 0;
			// A restarted node starts its counters at 0 again: no rate for that interval.
			const valid = before !== undefined && span > 0 && s.rxBytes >= before.rx && s.txBytes >= before.tx;
			series.rx.push(valid ? (s.rxBytes - before.rx) / span : null);
			series.tx.push(valid ? (s.txBytes - before.tx) / span : null);
			this.last.set(s.name, { time, rx: s.rxBytes, tx: s.txBytes });
		}
		for (const [name, series] of this.nodes) {
			if (seen.has(name)) continue;
			for (const values of Object.values(series) as (number | null)[][]) values.push(null);
			this.last.delete(name); // its counters restart with the node
		}
		if (this.times.length > this.max) this.drop(this.times.length - this.max);
	}

	get size(): number {
		return this.times.length;
	}

	private series(name: string, filled: number): NodeSeries {
		let series = this.nodes.get(name);
		if (series === undefined) {
			const gaps = () => new Array<number | null>(filled).fill(null);
			series = { cpu: gaps(), memory: gaps(), rx: gaps(), tx: gaps() };
			this.nodes.set(name, series);
		}
		return series;
	}

	private drop(count: number): void {
		this.times.splice(0, count);
		for (const [name, series] of this.nodes) {
			for (const values of Object.values(series) as (number | null)[][]) values.splice(0, count);
			// A node gone for the whole window leaves the charts.
			if (series.cpu.every((v) => v === null) && !this.last.has(name)) this.nodes.delete(name);
		}
	}
}
