// Shapes of the account, organisation and setup answers (kombify/api/routes/{auth,me,mfa,
// api_keys,orgs,activity,setup}.py).

export interface SessionRow {
	id: string;
	created_at: string;
	last_seen_at: string;
	expires_at: string;
	address: string;
	client: string;
	current: boolean;
}

export interface MfaStatus {
	totp_enabled: boolean;
	enrolment_pending: boolean;
	recovery_codes_left: number;
	required_by: string[];
}

export interface TotpEnrolment {
	secret: string;
	otpauth_uri: string;
}

export interface ApiKey {
	id: string;
	name: string;
	scope: 'read' | 'deploy' | 'admin';
	prefix: string;
	user_id: string;
	created_at: string;
	expires_at: string | null;
	last_used_at: string | null;
	revoked: boolean;
}

export interface ActivityEntry {
	id: number | string;
	at: string;
	actor: string;
	user_id: string | null;
	via: string;
	on_behalf_of: string | null;
	action: string;
	object_type: string | null;
	object_id: string | null;
	outcome: string;
	address: string | null;
	client: string | null;
	organisation_id: string | null;
}

export interface Member {
	user_id: string;
	email: string;
	name: string;
	role: Role;
}

export type Role = 'owner' | 'admin' | 'member' | 'viewer';
export const ROLES: Role[] = ['owner', 'admin', 'member', 'viewer'];
const RANK: Record<string, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };

/** Whether `role` is at least `minimum` (viewer < member < admin < owner). */
export function atLeast(role: string, minimum: Role): boolean {
	return (RANK[role] ?? -1) >= RANK[minimum];
}

export interface Invitation {
	id: string;
	email: string;
	role: Role;
	state: 'open' | 'accepted' | 'revoked' | 'expired';
	created_at: string;
	expires_at: string;
	token?: string;
}

export interface OrgDetail {
	id: string;
	slug: string;
	name: string;
	role: Role;
	mfa_required: boolean;
}

export interface KitService {
	name: string;
	use: string;
	description: string;
	default: boolean;
}

export interface StackKit {
	name: string;
	version: string;
	description: string;
	platform: string;
	variants: string[];
	default_variant: string;
	roles: { name: string; description: string }[];
	default_role: string;
	nodes: { min: number; max: number | null };
	role_counts: Record<string, { min: number; max: number | null; odd: boolean }>;
	requires_local: boolean;
	requires_cloud: boolean;
	requires_vpn: boolean;
	services: KitService[];
}

export interface Validation {
	valid: boolean;
	errors: { path: string; line: number | null; message: string }[];
}
