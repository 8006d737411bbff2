// The dashboard talks only to the public API, same origin, with the session cookies.

export const CSRF_COOKIE = '__Host-kombify_csrf';
export const CSRF_HEADER = 'X-CSRF-Token';

/** One field problem of a problem+json answer: `path` names the field (e.g. `spec.nodes[0].host`). */
export interface FieldError {
	path: string;
	message: string;
	line?: number | null;
}

/** An error answer of the API (RFC 9457 problem+json), or a network failure (status 0). */
export class ApiError extends Error {
	readonly status: number;
	readonly code: string;
	readonly detail: string;
	readonly errors: FieldError[];
	/** A 402's plan: the cheapest plan that allows what was refused. */
	readonly plan: string | null;

	constructor(status: number, code: string, detail: string, errors: FieldError[] = [], plan: string | null = null) {
		super(detail);
		this.name = 'ApiError';
		this.status = status;
		this.code = code;
		this.detail = detail;
		this.errors = errors;
		this.plan = plan;
	}

	/** The message for one field, when the API named it. */
	forField(path: string): string | undefined {
		return this.errors.find((e) => e.path === path)?.message;
	}
}

/** A cookie's value by name, or '' (only cookies a script may read: the CSRF one). */
export function readCookie(name: string): string {
	for (const part of document.cookie.split(';')) {
		const eq = part.indexOf('=');
		if (eq > 0 && part.slice(0, eq).trim() === name) {
			return decodeURIComponent(part.slice(eq + 1).trim());
		}
	}
	return '';
}

function asFieldErrors(value: unknown): FieldError[] {
	if (!Array.isArray(value)) return [];
	return value
		.filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
		.map((e) => ({
			path: typeof e.path === 'string' ? e.path : '',
			message: typeof e.message === 'string' ? e.message : String(e.message ?? ''),
			line: typeof e.line === 'number' ? e.line : null
		}));
}

/** An ApiError from a non-2xx response, reading problem+json when the body is one. */
export async function problemOf(response: Response): Promise<ApiError> {
	let code = 'error';
	let detail = `${response.status} ${response.statusText}`.trim();
	let errors: FieldError[] = [];
	let plan: string | null = null;
	const type = response.headers.get('content-type') ?? '';
	if (type.includes('json')) {
		try {
			const body = (await response.json()) as Record<string, unknown>;
			if (typeof body.detail === 'string') detail = body.detail;
			else if (typeof body.title === 'string') detail = body.title;
			if (typeof body.type === 'string') code = body.type.split('/').pop() || code;
			errors = asFieldErrors(body.errors);
			if (typeof body.plan === 'string') plan = body.plan;
		} catch {
			// a broken body keeps the status line as the message
		}
	}
	return new ApiError(response.status, code, detail, errors, plan);
}

export interface RequestOptions {
	method?: string;
	body?: unknown;
	signal?: AbortSignal;
}

/** The event the app shell listens for: the API refused the session (HTTP 401). */
export const SESSION_ENDED = 'kombify:session-ended';

function sessionEnded(): void {
	window.dispatchEvent(new CustomEvent(SESSION_ENDED));
}

/**
 * The event the app shell listens for: the organisation's plan does not include what a call
 * asked for (HTTP 402). `detail` is the ApiError; the shell shows its detail with a link to
 * the billing page, whichever page made the call.
 */
export const PAYMENT_REQUIRED = 'kombify:payment-required';

/**
 * Call the API: `path` starts with `/v1/`. JSON in and out; a change (any method but GET and
 * HEAD) carries the CSRF token. Resolves to `undefined` for 204; throws ApiError otherwise.
 */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
	const method = (options.method ?? 'GET').toUpperCase();
	const headers: Record<string, string> = { Accept: 'application/json' };
	if (method !== 'GET' && method !== 'HEAD') {
		const csrf = readCookie(CSRF_COOKIE);
		if (csrf) headers[CSRF_HEADER] = csrf;
	}
	let body: string | undefined;
	if (options.body !== undefined) {
		headers['Content-Type'] = 'application/json';
		body = JSON.stringify(options.body);
	}
	let response: Response;
	try {
		response = await fetch(path, {
			method,
			headers,
			body,
			credentials: 'same-origin',
			signal: options.signal
		});
	} catch (err) {
		if (err instanceof DOMException && err.name === 'AbortError') throw err;
		throw new ApiError(0, 'network', 'kombify did not answer: is the server running?');
	}
	if (!response.ok) {
		// A session revoked or expired while a page was open: every page goes to sign-in.
		if (response.status === 401 && !path.startsWith('/v1/auth/')) sessionEnded();
		const problem = await problemOf(response);
		if (response.status === 402) window.dispatchEvent(new CustomEvent(PAYMENT_REQUIRED, { detail: problem }));
		throw problem;
	}
	if (response.status === 204) return undefined as T;
	return (await response.json()) as T;
}

// Shapes of the answers the dashboard reads (kombify/db/models.py, kombify/api/routes/auth.py).

export interface User {
	id: string;
	email: string;
	name: string;
	email_verified: boolean;
	mfa_enabled: boolean;
}

export interface Organisation {
	id: string;
	slug: string;
	name: string;
}

export interface LoginAnswer {
	expires_at: string;
	user: User;
	organisation: Organisation;
	mfa_enrolment_required: boolean;
}

export interface Stack {
	id: string;
	name: string;
	stackkit: string;
	current_revision: number;
	created_at: string;
	updated_at: string;
	/** In lists (`GET /v1/stacks`): the newest run, null before the first. */
	last_run?: Deployment | null;
}

export interface Page<T> {
	data: T[];
	count: number;
}

export interface Deployment {
	id: string;
	stack: string;
	revision: number;
	kind: string;
	state: string;
	started_at: string;
	finished_at: string | null;
}
