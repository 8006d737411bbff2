// Live streams of the API (deployment logs, container logs, status changes) over
// Server-Sent Events. The browser's EventSource reconnects by itself after a dropped
// connection and sends `Last-Event-ID`, so the API resumes after the last line received.
// When the API answers with an error (or the server is down for a while) EventSource gives
// up; then this helper opens a new one after a pause, with `after=<last id>` in the query
// (the API reads it like Last-Event-ID), so no line is lost or repeated.

export interface StreamHandlers {
	/** Named events (`line`, `status` …) and unnamed `message` events; data as sent. */
	onEvent: (type: string, data: string, id: string) => void;
	/** The stream told it is finished (`end` event): no reconnect. */
	onEnd?: (data: string) => void;
	/** Connection state for the page to show (never an error dialog: it reconnects). */
	onState?: (state: 'connecting' | 'open' | 'retrying' | 'closed') => void;
}

export interface Stream {
	close(): void;
}

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30000;

function withAfter(url: string, lastId: string): string {
	if (!lastId) return url;
	const u = new URL(url, location.origin);
	u.searchParams.set('after', lastId);
	return u.pathname + u.search;
}

/** Follow `url` (same origin, with the session cookie) until `end` or `close()`. */
export function follow(url: string, events: string[], handlers: StreamHandlers): Stream {
	let source: EventSource | null = null;
	let lastId = '';
	let closed = false;
	let retryMs = RETRY_MIN_MS;
	let timer: ReturnType<typeof setTimeout> | undefined;

	const connect = (): void => {
		handlers.onState?.('connecting');
		const es = new EventSource(withAfter(url, lastId), { withCredentials: true });
		source = es;
		es.onopen = () => {
			retryMs = RETRY_MIN_MS;
			handlers.onState?.('open');
		};
		const deliver = (type: string) => (ev: MessageEvent<string>) => {
			if (ev.lastEventId) lastId = ev.lastEventId;
			handlers.onEvent(type, ev.data, ev.lastEventId);
		};
		es.onmessage = deliver('message');
		for (const type of events) es.addEventListener(type, deliver(type) as EventListener);
		es.addEventListener('end', ((ev: MessageEvent<string>) => {
			closed = true;
			es.close();
			handlers.onEnd?.(ev.data);
			handlers.onState?.('closed');
		}) as EventListener);
		es.onerror = () => {
			if (closed) return;
			if (es.readyState === EventSource.CLOSED) {
				// EventSource gave up (an error status): reconnect ourselves, backing off.
				handlers.onState?.('retrying');
				timer = setTimeout(connect, retryMs);
				retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
			} else {
				handlers.onState?.('retrying'); // the browser reconnects with Last-Event-ID
			}
		};
	};

	connect();
	return {
		close() {
			closed = true;
			clearTimeout(timer);
			source?.close();
			handlers.onState?.('closed');
		}
	};
}
