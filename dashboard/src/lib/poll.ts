// Refresh a page's data on a timer, never faster than every 5 s (issue #14), and not while
// the tab is hidden. The next round starts only after the previous one finished.

export const MIN_INTERVAL_MS = 5000;

export function poll(task: (signal: AbortSignal) => Promise<void>, intervalMs = MIN_INTERVAL_MS): () => void {
	const every = Math.max(intervalMs, MIN_INTERVAL_MS);
	const controller = new AbortController();
	let timer: ReturnType<typeof setTimeout> | undefined;
	let stopped = false;

	const round = async (): Promise<void> => {
		if (stopped) return;
		if (document.visibilityState !== 'hidden') {
			try {
				await task(controller.signal);
			} catch {
				// the task shows its own errors; polling goes on
			}
		}
		if (!stopped) timer = setTimeout(round, every);
	};

	void round();
	return () => {
		stopped = true;
		clearTimeout(timer);
		controller.abort();
	};
}
