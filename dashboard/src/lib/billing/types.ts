// Shapes of the billing answers (docs/billing.md, "API").

export interface Entitlements {
	/** null: no limit */
	stacks: number | null;
	kombisim: 'basic' | 'full';
	simulations: number | null;
	simulation_nodes: number | null;
	stackkits: 'base' | 'premium';
	team: boolean;
	sso: boolean;
	priority_support: boolean;
}

export interface Plan {
	id: string;
	name: string;
	summary: string;
	/** null: a custom price (Enterprise) */
	monthly_cents: number | null;
	self_serve: boolean;
	entitlements: Entitlements;
}

/** `GET /v1/plans` (public). */
export interface Plans {
	billing: boolean;
	currency: string;
	data: Plan[];
}

/** `GET /v1/orgs/{org}/entitlements`. */
export interface OrgEntitlements {
	billing: boolean;
	plan: { id: string; name: string };
	status: string | null;
	entitlements: Entitlements;
	usage: { stacks: number; simulations: number; members: number };
	frozen_stacks: string[];
	current_period_end: string | null;
	trial_end: string | null;
	grace_until: string | null;
	pending_plan: string | null;
	cancel_at_period_end: boolean;
}

export interface Invoice {
	id: string;
	number: string | null;
	/** draft, open, paid, void or uncollectible */
	status: string | null;
	amount_due: number;
	amount_paid: number;
	currency: string;
	created: string;
	period_start: string | null;
	period_end: string | null;
	pdf: string | null;
	hosted_url: string | null;
}

/** `GET /v1/orgs/{org}/billing/usage`: this month's metered usage. */
export interface MeteredUsage {
	deploy_minutes: number;
	api_calls: number;
	reported_through: string | null;
}
