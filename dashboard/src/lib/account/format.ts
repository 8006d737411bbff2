// Small display helpers for the account pages.

/** A timestamp in the reader's locale, or '—'. */
export function when(iso: string | null | undefined): string {
	if (!iso) return '—';
	const d = new Date(iso);
	if (Number.isNaN(d.getTime())) return iso;
	return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A browser's user agent, shortened to what a person recognises. */
export function clientName(ua: string): string {
	if (!ua) return 'unknown client';
	if (/kombify|python-httpx|curl/i.test(ua)) return ua.split(' ')[0];
	const browser =
		/Edg\//.test(ua) ? 'Edge' :
		/Firefox\//.test(ua) ? 'Firefox' :
		/Chrome\/|Chromium\//.test(ua) ? (/HeadlessChrome/.test(ua) ? 'Chromium (headless)' : 'Chrome') :
		/Safari\//.test(ua) ? 'Safari' : '';
	const os =
		/Android/.test(ua) ? 'Android' :
		/iPhone|iPad/.test(ua) ? 'iOS' :
		/Windows/.test(ua) ? 'Windows' :
		/Mac OS X/.test(ua) ? 'macOS' :
		/Linux/.test(ua) ? 'Linux' : '';
	if (browser) return os ? `${browser} on ${os}` : browser;
	return ua.length > 60 ? ua.slice(0, 57) + '…' : ua;
}

/** An ApiError's or any error's message for a person. */
export function messageOf(err: unknown): string {
	if (err && typeof err === 'object' && 'detail' in err && typeof err.detail === 'string') {
		return err.detail;
	}
	return String(err);
}

/**
 * The message for one field: from the problem's `errors` list, or from a detail of the form
 * `field: message` (how kombify names the field of a single refusal, e.g. a taken email).
 */
export function fieldError(err: unknown, path: string): string | undefined {
	if (!err || typeof err !== 'object' || !('detail' in err)) return undefined;
	const e = err as { detail: string; errors?: { path: string; message: string }[] };
	const listed = e.errors?.find((x) => x.path === path)?.message;
	if (listed) return listed;
	return e.detail.startsWith(path + ': ') ? e.detail.slice(path.length + 2) : undefined;
}
