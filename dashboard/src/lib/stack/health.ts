// One word for a stack's health, from its status as the nodes reported it (the same rule as
// `kombify status`'s exit code: kombify/cli/deploy_cmds.py `_healthy`).
import type { StackStatus } from './types';

export interface Health {
	text: string;
	tone: 'ok' | 'bad' | 'warn' | '';
}

export function healthOf(status: StackStatus): Health {
	if (status.deployed_revision === null) return { text: 'nothing deployed', tone: '' };
	if (!status.observed) return { text: 'nodes not asked', tone: 'warn' };
	const silent = status.nodes.filter((n) => !n.answered).map((n) => n.name);
	let wanted = 0;
	let unwell = 0;
	for (const node of status.nodes) {
		for (const info of Object.values(node.services)) {
			if (info.desired_replicas <= 0) continue;
			wanted += 1;
			// A service its owner stopped is as its owner wants it (docs/services.md).
			if (!info.healthy && !info.stopped_by_owner) unwell += 1;
		}
	}
	const swarm = status.swarm;
	if (swarm) {
		for (const info of Object.values(swarm.services)) {
			wanted += 1;
			if (!info.healthy) unwell += 1;
		}
		if (!swarm.answered || !swarm.quorum) return { text: 'swarm without quorum', tone: 'bad' };
	}
	if (silent.length) return { text: `${silent.join(', ')} not answering`, tone: 'bad' };
	if (unwell) return { text: `${unwell} of ${wanted} services unhealthy`, tone: 'bad' };
	return { text: `healthy (${wanted} service${wanted === 1 ? '' : 's'})`, tone: 'ok' };
}
