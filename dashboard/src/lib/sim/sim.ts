// KombiSim through the public API (`/v1/simulations`, kombify/api/routes/sims.py): the shapes
// it answers and small helpers the simulation pages share.
import { api, problemOf, ApiError } from '$lib/api';

/** One row of `GET /v1/simulations`. */
export interface SimulationSummary {
	name: string;
	/** `running` (every node), `stopped` (none) or `partial`. */
	state: string;
	nodes: number;
	description: string;
}

/** How to reach a node's sshd from the machine kombify runs on (null while it is not running). */
export interface SshEndpoint {
	host: string;
	port: number;
	user: string;
	identityFile: string;
	command: string;
}

export interface SimNode {
	name: string;
	/** Docker's container state: `running`, `exited`, `created`, `restarting`, `paused`… */
	state: string;
	type: string;
	group: string;
	role: string;
	cpus: number;
	memoryMb: number;
	containerId: string;
	ssh: SshEndpoint | null;
	/** Extra published ports: container port -> host port on 127.0.0.1. */
	ports: Record<string, number>;
}

/** `GET /v1/simulations/{name}` (also the answer of create, start, stop, restart). */
export interface SimulationInfo {
	name: string;
	description: string;
	state: string;
	groups: string[];
	nodes: SimNode[];
}

export interface Template {
	name: string;
	description: string;
	/** `builtin` or `user`. */
	source: string;
	path: string;
	nodes: { name: string; group: string; type: string; role: string }[];
}

/** One node's sample of `GET /v1/simulations/{name}/stats` (running nodes only). */
export interface NodeStats {
	name: string;
	cpuPercent: number;
	memoryBytes: number;
	memoryLimitBytes: number;
	rxBytes: number;
	txBytes: number;
}

export interface Listing<T> {
	data: T[];
	count: number;
}

export type Action = 'start' | 'stop' | 'restart';

const BASE = '/v1/simulations';

/** The API path of one simulation (names are DNS labels, encoded all the same). */
export function simPath(name: string, rest = ''): string {
	return `${BASE}/${encodeURIComponent(name)}${rest}`;
}

export const listSimulations = (signal?: AbortSignal) =>
	api<Listing<SimulationSummary>>(BASE, { signal });
export const listTemplates = (signal?: AbortSignal) =>
	api<Listing<Template>>(`${BASE}/templates`, { signal });
export const getSimulation = (name: string, signal?: AbortSignal) =>
	api<SimulationInfo>(simPath(name), { signal });
export const getStats = (name: string, signal?: AbortSignal) =>
	api<Listing<NodeStats>>(simPath(name, '/stats'), { signal });

export function createSimulation(body: { template: string; name?: string }): Promise<SimulationInfo> {
	return api<SimulationInfo>(BASE, { method: 'POST', body });
}

export function act(name: string, action: Action): Promise<SimulationInfo> {
	return api<SimulationInfo>(simPath(name, `/${action}`), { method: 'POST' });
}

export function deleteSimulation(name: string): Promise<void> {
	return api<void>(simPath(name), { method: 'DELETE' });
}

/** The template YAML that re-creates a simulation (`GET …/{name}/export`). */
export async function exportSimulation(name: string): Promise<string> {
	let response: Response;
	try {
		response = await fetch(simPath(name, '/export'), {
			headers: { Accept: 'application/yaml, application/problem+json' },
			credentials: 'same-origin'
		});
	} catch {
		throw new ApiError(0, 'network', 'kombify did not answer: is the server running?');
	}
	if (!response.ok) throw await problemOf(response);
	return response.text();
}

/** The longest simulation name the API takes (kombify/names.py). */
export const NAME_MAX = 32;

/**
 * A name for a new simulation from `template` that none of `taken` has: the template's own
 * name, else `<template>-2`, `-3`… (simulation names are DNS labels of at most 32 characters).
 */
export function freeName(template: string, taken: Iterable<string>): string {
	const names = new Set(taken);
	if (!names.has(template)) return template;
	for (let i = 2; ; i++) {
		const suffix = `-${i}`;
		const candidate = template.slice(0, NAME_MAX - suffix.length) + suffix;
		if (!names.has(candidate)) return candidate;
	}
}

/** The theme's tone for a node's or a simulation's state. */
export function tone(state: string): 'ok' | 'warn' | 'bad' | '' {
	if (state === 'running') return 'ok';
	if (['exited', 'dead', 'stopped', 'removing'].includes(state)) return 'bad';
	if (['created', 'restarting', 'paused', 'partial'].includes(state)) return 'warn';
	return '';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** Bytes as people read them (1024-based, as `docker stats` shows them). */
export function bytes(value: number): string {
	let v = Math.max(0, value);
	let unit = 0;
	while (v >= 1024 && unit < UNITS.length - 1) {
		v /= 1024;
		unit++;
	}
	return `${v >= 100 || unit === 0 ? Math.round(v) : v.toFixed(1)} ${UNITS[unit]}`;
}

/** A node's memory limit as the template wrote it (MiB as given, GiB when whole). */
export function memory(mb: number): string {
	return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MiB`;
}

export function isAbort(err: unknown): boolean {
	return err instanceof DOMException && err.name === 'AbortError';
}

export function message(err: unknown): string {
	return err instanceof ApiError ? err.detail : String(err);
}
