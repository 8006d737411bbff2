// Who is signed in, as `GET /v1/me` says; shared by the app shell and its pages.
import { api, ApiError, type Organisation, type User } from './api';

export interface Me {
	user: User | null;
	organisation: Organisation;
	role: string;
	via: string;
	mfa_enrolment_required: boolean;
}

class Session {
	me = $state<Me | null>(null);
	checked = $state(false);

	/** Ask the API who we are; `null` when not signed in (401). Other errors propagate. */
	async refresh(): Promise<Me | null> {
		try {
			this.me = await api<Me>('/v1/me');
		} catch (err) {
			if (!(err instanceof ApiError) || err.status !== 401) throw err;
			this.me = null;
		} finally {
			this.checked = true;
		}
		return this.me;
	}

	async logout(): Promise<void> {
		try {
			await api<void>('/v1/auth/logout', { method: 'POST' });
		} catch (err) {
			// An expired session is signed out already; anything else is worth showing.
			if (!(err instanceof ApiError) || err.status !== 401) throw err;
		}
		this.me = null;
	}
}

export const session = new Session();
