/** Where to go after signing in: a path of this dashboard only (never another origin). */
export function safeNext(value: string | null, fallback = '/stacks'): string {
	if (!value || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) {
		return fallback;
	}
	if (value.startsWith('/login') || value.startsWith('/logout')) return fallback;
	return value;
}
