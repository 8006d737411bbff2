// A state word's tone (ok, warn, bad or neutral) and how long ago a time was. Colour is never
// the only sign: every state is also written out beside its colour.

const OK = new Set([
	'running',
	'healthy',
	'routed',
	'up',
	'succeeded',
	'done',
	'rolled-out',
	'recovered',
	'agent-ready',
	'bootstrapped',
	'in step'
]);
const BAD = new Set([
	'unhealthy',
	'stopped',
	'missing',
	'unreachable',
	'down',
	'failed',
	'exited',
	'dead',
	'cancelled',
	'timed-out',
	'terminated',
	'needs-repair',
	'given-up',
	'open'
]);
const WARN = new Set([
	'degraded',
	'waiting-approval',
	'waiting',
	'restarting',
	'starting',
	'not-wanted',
	'stopped-by-owner',
	'idle',
	'created',
	'paused',
	'rolled-back'
]);

export type Tone = 'ok' | 'warn' | 'bad' | 'none';

export function toneOf(state: string): Tone {
	if (OK.has(state)) return 'ok';
	if (BAD.has(state)) return 'bad';
	if (WARN.has(state)) return 'warn';
	return 'none';
}

/** A short glyph beside the word, so states differ by shape too (not colour only). */
export function glyphOf(tone: Tone): string {
	return { ok: '●', warn: '◐', bad: '✕', none: '○' }[tone];
}

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago"; '' for an empty or unreadable time. */
export function ago(when: string | null | undefined, now = Date.now()): string {
	if (!when) return '';
	const t = Date.parse(when);
	if (Number.isNaN(t)) return '';
	const s = Math.max(0, Math.round((now - t) / 1000));
	if (s < 60) return `${s} s ago`;
	if (s < 3600) return `${Math.floor(s / 60)} min ago`;
	if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
	return `${Math.floor(s / 86400)} d ago`;
}

/** A time as the reader's locale writes it, to the second. */
export function when(value: string | null | undefined): string {
	if (!value) return '';
	const t = new Date(value);
	if (Number.isNaN(t.getTime())) return value;
	return t.toLocaleString(undefined, {
		year: 'numeric',
		month: 'short',
		day: 'numeric',
		hour: '2-digit',
		minute: '2-digit',
		second: '2-digit'
	});
}

/** Seconds between two times as "1 min 4 s"; '' when the start is missing. */
export function duration(start: string | null, end: string | null, now = Date.now()): string {
	if (!start) return '';
	const a = Date.parse(start);
	const b = end ? Date.parse(end) : now;
	if (Number.isNaN(a) || Number.isNaN(b)) return '';
	const s = Math.max(0, Math.round((b - a) / 1000));
	if (s < 60) return `${s} s`;
	if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
	return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** The error text of anything thrown by api() or a bug. */
export function message(err: unknown): string {
	if (err && typeof err === 'object' && 'detail' in err && typeof err.detail === 'string') {
		return err.detail;
	}
	return String(err);
}

export function aborted(err: unknown): boolean {
	return err instanceof DOMException && err.name === 'AbortError';
}

export const enc = encodeURIComponent;
