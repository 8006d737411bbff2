// Billing's words and numbers: prices from cents, entitlements in plain words.
import type { Entitlements, Plan } from './types';

/** An amount in the currency's minor unit (cents) as money, e.g. `$29` or `$12.50`. */
export function money(cents: number, currency = 'usd'): string {
	const whole = cents % 100 === 0;
	try {
		return new Intl.NumberFormat(undefined, {
			style: 'currency',
			currency: currency.toUpperCase(),
			minimumFractionDigits: whole ? 0 : 2,
			maximumFractionDigits: 2
		}).format(cents / 100);
	} catch {
		return `${(cents / 100).toFixed(whole ? 0 : 2)} ${currency.toUpperCase()}`;
	}
}

/** A plan's price: `$29 / month`, `$0`, or `custom` (set per organisation). */
export function price(plan: Plan, currency = 'usd'): string {
	if (plan.monthly_cents === null) return 'custom';
	if (plan.monthly_cents === 0) return money(0, currency);
	return `${money(plan.monthly_cents, currency)} / month`;
}

function count(n: number, one: string, many: string): string {
	return `${n} ${n === 1 ? one : many}`;
}

/** How many stacks: `1 stack`, `5 stacks`, `unlimited stacks`. */
export function stacksWords(limit: number | null): string {
	return limit === null ? 'unlimited stacks' : count(limit, 'stack', 'stacks');
}

/** What KombiSim allows: `KombiSim: 1 simulation of up to 3 nodes`, or unlimited. */
export function kombisimWords(e: Entitlements): string {
	if (e.simulations === null && e.simulation_nodes === null) {
		return 'KombiSim: unlimited simulations of any size';
	}
	const sims = e.simulations === null ? 'unlimited simulations' : count(e.simulations, 'simulation', 'simulations');
	const nodes = e.simulation_nodes === null ? 'of any size' : `of up to ${count(e.simulation_nodes, 'node', 'nodes')}`;
	return `KombiSim: ${sims} ${nodes}`;
}

export function stackkitsWords(e: Entitlements): string {
	return e.stackkits === 'premium' ? 'every StackKit' : 'the base StackKit only';
}

export function teamWords(e: Entitlements): string {
	return e.team ? 'members beyond the owner' : 'the owner only, no other members';
}

export function ssoWords(e: Entitlements): string {
	return e.sso ? 'your own identity provider (SSO)' : 'no own identity provider';
}

export function supportWords(e: Entitlements): string {
	return e.priority_support ? 'priority support' : 'no priority support';
}

export interface Row {
	key: string;
	label: string;
	/** the plain words for this plan */
	words: (e: Entitlements) => string;
	/** whether the plan has it at all (false: shown muted) */
	has: (e: Entitlements) => boolean;
}

/** The comparison's rows, in order. */
export const ROWS: Row[] = [
	{ key: 'stacks', label: 'Stacks', words: (e) => stacksWords(e.stacks), has: () => true },
	{ key: 'kombisim', label: 'KombiSim', words: kombisimWords, has: () => true },
	{ key: 'stackkits', label: 'StackKits', words: stackkitsWords, has: () => true },
	{ key: 'team', label: 'Team', words: teamWords, has: (e) => e.team },
	{ key: 'sso', label: 'Single sign-on', words: ssoWords, has: (e) => e.sso },
	{ key: 'support', label: 'Support', words: supportWords, has: (e) => e.priority_support }
];

/** A subscription status in words; '' without a subscription (`none`, Free). */
export function statusWords(status: string | null): string {
	switch (status) {
		case null:
		case '':
		case 'none':
		case 'self-hosted':
			return '';
		case 'active':
			return 'active';
		case 'checkout':
			return 'checkout started';
		case 'trialing':
			return 'trial';
		case 'past_due':
			return 'payment past due';
		case 'unpaid':
			return 'unpaid';
		case 'canceled':
			return 'cancelled';
		case 'incomplete':
			return 'waiting for the first payment';
		case 'incomplete_expired':
			return 'first payment not made';
		case 'paused':
			return 'paused';
		default:
			return status.replaceAll('_', ' ');
	}
}

/** The tone of a status: ok, warn or bad (the theme's `.state` classes). */
export function statusTone(status: string | null): 'ok' | 'warn' | 'bad' {
	if (!status || status === 'active' || status === 'trialing') return 'ok';
	if (status === 'past_due' || status === 'incomplete' || status === 'checkout') return 'warn';
	return 'bad';
}

/** A date without the time, in the reader's locale, or '—'. */
export function day(iso: string | null | undefined): string {
	if (!iso) return '—';
	const d = new Date(iso);
	if (Number.isNaN(d.getTime())) return iso;
	return d.toLocaleDateString(undefined, { dateStyle: 'medium' });
}

/** A whole number with the reader's grouping (12,345). */
export function num(n: number): string {
	return new Intl.NumberFormat().format(n);
}
