// The first-run wizard's helpers: "is setup needed?", the call made with the admin token,
// and a kombination built from the wizard's form (as YAML text for the API).
import { problemOf } from '$lib/api';
import type { StackKit } from './types';

/** Whether this installation still waits for its first owner (`GET /v1/setup`, anonymous). */
export async function setupNeeded(): Promise<boolean> {
	try {
		const response = await fetch('/v1/setup', { headers: { Accept: 'application/json' } });
		if (!response.ok) return false;
		const body = (await response.json()) as { setup_needed?: unknown };
		return body.setup_needed === true;
	} catch {
		return false;
	}
}

/**
 * Make the first owner with the machine's admin token (`POST /v1/admin/owner`). The token is
 * sent once, as a bearer credential, never stored by the page; the API retires it on success.
 */
export async function createOwner(
	adminToken: string,
	owner: { email: string; name: string; password: string }
): Promise<void> {
	const response = await fetch('/v1/admin/owner', {
		method: 'POST',
		headers: {
			Accept: 'application/json',
			'Content-Type': 'application/json',
			Authorization: `Bearer ${adminToken.trim()}`
		},
		body: JSON.stringify(owner),
		credentials: 'omit'
	});
	if (!response.ok) throw await problemOf(response);
}

// -- the kombination form --------------------------------------------------------------------

export const PROVIDERS = ['sim', 'local', 'hetzner', 'aws', 'azure'] as const;
export type Provider = (typeof PROVIDERS)[number];

export interface NodeForm {
	name: string;
	provider: Provider;
	role: string;
	address: string;
	sshUser: string;
}

export interface CustomService {
	name: string;
	image: string;
	containerPort: string;
	hostPort: string;
}

export interface KombinationForm {
	name: string;
	kit: string;
	nodes: NodeForm[];
	/** Kit services by name: on or off (only differences from the kit's default are written). */
	services: Record<string, boolean>;
	custom: CustomService | null;
}

/** The kit's first node names and roles, enough to satisfy its node rules. */
export function starterNodes(kit: StackKit): NodeForm[] {
	const nodes: NodeForm[] = [];
	const add = (role: string, provider: Provider): void => {
		nodes.push({ name: `${role}-${nodes.filter((n) => n.role === role).length + 1}`, provider, role, address: '', sshUser: '' });
	};
	for (const [role, count] of Object.entries(kit.role_counts)) {
		for (let i = 0; i < Math.max(count.min, 0); i++) add(role, 'sim');
	}
	if (nodes.length === 0) add(kit.default_role, 'sim');
	while (nodes.length < kit.nodes.min) add(kit.roles.at(-1)?.name ?? kit.default_role, 'sim');
	if (nodes.length === 1 && kit.nodes.max === 1) nodes[0].name = 'box';
	if (kit.requires_cloud) {
		const edge = nodes.find((n) => n.role !== kit.default_role) ?? nodes.at(-1);
		if (edge) edge.provider = 'hetzner';
	}
	return nodes;
}

/** The kombination the form describes, as a plain object. */
export function kombinationOf(form: KombinationForm, kit: StackKit | undefined): Record<string, unknown> {
	const nodes = form.nodes.map((n) => {
		const node: Record<string, unknown> = { name: n.name, provider: n.provider };
		if (n.role) node.role = n.role;
		if (n.provider === 'local') {
			if (n.address.trim()) node.address = n.address.trim();
			if (n.sshUser) node.ssh = { user: n.sshUser };
		}
		return node;
	});
	const services: Record<string, unknown> = {};
	for (const s of kit?.services ?? []) {
		const on = form.services[s.name] ?? s.default;
		if (on !== s.default) services[s.name] = on ? {} : { enabled: false };
	}
	if (form.custom && (form.custom.name || form.custom.image)) {
		const c: Record<string, unknown> = { image: form.custom.image };
		if (form.custom.containerPort) {
			const port: Record<string, unknown> = { container: Number(form.custom.containerPort) };
			if (form.custom.hostPort) port.host = Number(form.custom.hostPort);
			c.ports = [port];
		}
		services[form.custom.name] = c;
	}
	const spec: Record<string, unknown> = { stackkit: form.kit, nodes };
	if (Object.keys(services).length) spec.services = services;
	if (kit?.requires_vpn) spec.network = { vpn: { enabled: true } };
	return {
		apiVersion: 'kombify.io/v1',
		kind: 'Kombination',
		metadata: { name: form.name },
		spec
	};
}

// A scalar YAML reads back as the same string: plain when unambiguous, else JSON-quoted (a JSON
// string is a valid YAML double-quoted scalar).
const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./@-]*$/;
const KEYWORD = /^(true|false|yes|no|on|off|null|y|n)$/i;

function scalar(value: unknown): string {
	if (typeof value === 'number' || typeof value === 'boolean') return String(value);
	if (value === null || value === undefined) return 'null';
	const s = String(value);
	return PLAIN.test(s) && !KEYWORD.test(s) ? s : JSON.stringify(s);
}

function isEmpty(value: unknown): boolean {
	return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}

/** Block-style YAML of plain data (maps, lists, strings, numbers, booleans). */
export function toYaml(value: unknown, indent = ''): string {
	if (Array.isArray(value)) {
		if (value.length === 0) return '[]';
		return value
			.map((item) => {
				if (typeof item === 'object' && item !== null && !isEmpty(item)) {
					const inner = toYaml(item, indent + '  ');
					return `${indent}- ${inner.slice(indent.length + 2)}`;
				}
				return `${indent}- ${isEmpty(item) ? (Array.isArray(item) ? '[]' : '{}') : scalar(item)}`;
			})
			.join('\n');
	}
	if (typeof value === 'object' && value !== null) {
		return Object.entries(value)
			.map(([k, v]) => {
				const key = scalar(k);
				if (typeof v === 'object' && v !== null && !isEmpty(v)) {
					return `${indent}${key}:\n${toYaml(v, indent + '  ')}`;
				}
				return `${indent}${key}: ${isEmpty(v) ? (Array.isArray(v) ? '[]' : '{}') : scalar(v)}`;
			})
			.join('\n');
	}
	return indent + scalar(value);
}
