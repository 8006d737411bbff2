// Shapes of the stack routes' answers (kombify/db/models.py, kombify/operate/graph/model.py,
// kombify/operate/history.py, kombify/contracts/heal.py, kombify/api/routes/services.py).

export interface ContainerStatus {
	id: string;
	state: string;
	health: string;
	image: string;
	since: string;
}

export interface ServiceStatus {
	state: string;
	healthy: boolean;
	health: string;
	desired_replicas: number;
	image: string;
	containers: string[];
	details: ContainerStatus[];
	endpoints: string[];
	stopped_by_owner: boolean;
}

export interface NodeStatus {
	name: string;
	answered: boolean;
	error: string | null;
	observed_at: string;
	services: Record<string, ServiceStatus>;
}

export interface SwarmTaskStatus {
	node: string;
	state: string;
	error: string;
}

export interface SwarmServiceStatus {
	mode: string;
	wanted: number;
	running: number;
	healthy: boolean;
	publish_mode: string;
	image: string;
	tasks: SwarmTaskStatus[];
	endpoints: string[];
	update_state: string;
	update_message: string;
}

export interface SwarmStatus {
	manager: string;
	answered: boolean;
	error: string | null;
	quorum: boolean;
	managers: number;
	reachable_managers: number;
	nodes: number;
	nodes_ready: number;
	services: Record<string, SwarmServiceStatus>;
}

export interface DeploymentDetail {
	id: string;
	stack: string;
	revision: number;
	kind: string;
	workflow_id: string;
	state: string;
	started_at: string;
	finished_at: string | null;
	summary: Record<string, unknown>;
	progress: Progress | null;
}

export interface StepState {
	name: string;
	state: string;
	started_at: string | null;
	finished_at: string | null;
	detail: string;
}

export interface NodeProgress {
	name: string;
	state: string;
	provider: string;
	role: string;
	services: Record<string, string>;
	healthy: Record<string, boolean>;
	containers: Record<string, string[]>;
	detail: string;
	host_key: string;
}

export interface Progress {
	deployment_id: string;
	stack: string;
	kind: string;
	state: string;
	steps: StepState[];
	nodes: NodeProgress[];
	plan: { add: number; change: number; destroy: number } | null;
	error: string | null;
	plan_lines: string[];
}

export interface StackStatus {
	stack: string;
	revision: number;
	deployed_revision: number | null;
	observed: boolean;
	error: string | null;
	last_deployment: DeploymentDetail | null;
	nodes: NodeStatus[];
	swarm: SwarmStatus | null;
}

export interface StackDetail {
	id: string;
	name: string;
	stackkit: string;
	current_revision: number;
	created_at: string;
	updated_at: string;
	source: string;
	sha256: string;
}

export type ElementKind = 'node' | 'service' | 'network' | 'route';
export type EdgeKind = 'placement' | 'network' | 'route' | 'vpn-link';

export interface GraphElement {
	id: string;
	kind: ElementKind;
	label: string;
	state: string;
	detail: string | null;
	attrs: Record<string, unknown>;
}

export interface GraphEdge {
	id: string;
	kind: EdgeKind;
	source: string;
	target: string;
	label: string;
	state: string;
	detail: string | null;
	replicas: number | null;
	running: number | null;
	attrs: Record<string, unknown>;
}

export interface StackGraph {
	version: 1;
	stack: string;
	revision: number;
	source: 'deployed' | 'current';
	stackkit: string;
	platform: string;
	domain: string;
	live: boolean;
	observed_at: string | null;
	error: string | null;
	vpn: { provider: string; subnet: string; interface: string } | null;
	elements: GraphElement[];
	edges: GraphEdge[];
}

export interface LogLine {
	id?: number;
	time: string;
	source: string;
	level: string;
	message: string;
}

export interface ChangePublic {
	kind: string;
	object: string;
	name: string;
	details: string[];
}

export interface RunOutcome {
	id: string;
	kind: string;
	state: string;
	started_at: string;
	finished_at: string | null;
	rollback_of: number | null;
	error: string | null;
}

export interface RevisionPublic {
	revision: number;
	created_at: string;
	sha256: string;
	current: boolean;
	deployed: boolean;
	rollback_of: number | null;
	outcome: string;
	runs: RunOutcome[];
	previous: number | null;
	summary: string;
	changes: ChangePublic[];
}

export interface RevisionsPublic {
	stack: string;
	current_revision: number;
	deployed_revision: number | null;
	data: RevisionPublic[];
	count: number;
}

export interface DiffPublic {
	stack: string;
	from_revision: number | null;
	to_revision: number;
	identical: boolean;
	summary: string;
	changes: ChangePublic[];
	text: string;
}

export interface Incident {
	id: number;
	stack: string;
	node: string;
	service: string;
	kind: string;
	detection: string;
	detail: string;
	detected_at: string;
	action: string;
	actions: string[];
	recovered_at: string;
	state: string;
	time_to_recovery_s: number | null;
}

export interface DriftItem {
	node: string;
	kind: string;
	service: string;
	container: string;
	detail: string;
}

export interface DriftFound {
	items: DriftItem[];
	checked_at: string;
	strategy: string;
}

export interface ReplicaPublic {
	node: string;
	container: string;
	replica: number;
	state: string;
	health: string;
	ok: boolean;
	error: string;
}

export interface ServiceActionPublic {
	stack: string;
	service: string;
	action: string;
	ok: boolean;
	replicas: ReplicaPublic[];
}

export interface ValidateAnswer {
	valid: boolean;
	errors: { path: string; line: number | null; message: string }[];
}
