// Lays a stack graph out with elkjs (layered, left to right: routes → services → nodes and
// networks). elkjs is big, so it is imported here on demand: only the stack page loads it,
// its bundled build running on the page (no web worker).
import type { GraphEdge, GraphElement, StackGraph } from './types';

export interface Point {
	x: number;
	y: number;
}

export interface PlacedBox {
	id: string;
	x: number;
	y: number;
	width: number;
	height: number;
}

export interface PlacedEdge {
	id: string;
	points: Point[];
	label: { x: number; y: number; width: number; height: number } | null;
}

export interface Layout {
	key: string;
	width: number;
	height: number;
	boxes: Map<string, PlacedBox>;
	edges: Map<string, PlacedEdge>;
}

export const BOX_HEIGHT = 64;
const CHAR = 7.8; // average width of a bold 13 px system-ui character
const MAX_CHARS = 34;

/** What a box says under its name (image and replicas, role, host …). */
export function subline(el: GraphElement): string {
	const a = el.attrs;
	if (el.kind === 'service') {
		const replicas = a.replicas_total ?? a.replicas;
		const image = typeof a.image === 'string' ? a.image : '';
		return replicas !== undefined && replicas !== null ? `${image} ×${replicas}` : image;
	}
	if (el.kind === 'node') return typeof a.address === 'string' ? a.address : 'node';
	if (el.kind === 'network') return `network${a.scope === 'swarm' ? ' (swarm)' : ''}`;
	if (el.kind === 'route') return typeof a.url === 'string' ? a.url : 'route';
	return '';
}

export function clip(text: string, max = MAX_CHARS): string {
	return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

function boxWidth(el: GraphElement): number {
	const longest = Math.max(
		clip(el.label).length,
		clip(subline(el)).length,
		el.state.length + 2
	);
	const pad = el.kind === 'network' || el.kind === 'route' ? 40 : 28;
	return Math.round(Math.min(Math.max(longest * CHAR + pad, 120), 300));
}

/** Changes when a box or a line comes or goes (states alone do not lay out again). */
export function structureKey(graph: StackGraph): string {
	const ids = graph.elements.map((e) => `${e.id}|${e.label}|${subline(e)}`);
	const lines = graph.edges.map((e) => `${e.id}|${e.label}`);
	return [...ids.sort(), '--', ...lines.sort()].join('\n');
}

interface ElkPoint {
	x: number;
	y: number;
}
interface ElkResult {
	width?: number;
	height?: number;
	children?: { id: string; x?: number; y?: number; width?: number; height?: number }[];
	edges?: {
		id: string;
		sections?: { startPoint: ElkPoint; endPoint: ElkPoint; bendPoints?: ElkPoint[] }[];
		labels?: { x?: number; y?: number; width?: number; height?: number }[];
	}[];
}
interface ElkLike {
	layout(graph: unknown): Promise<ElkResult>;
}

let elk: Promise<ElkLike> | null = null;

function loadElk(): Promise<ElkLike> {
	elk ??= import('elkjs/lib/elk.bundled.js').then((m) => {
		const ELK = (m as unknown as { default: new () => ElkLike }).default;
		return new ELK();
	});
	return elk;
}

function edgeLabel(edge: GraphEdge): string {
	return edge.label;
}

export type Direction = 'RIGHT' | 'DOWN';

export async function layOut(graph: StackGraph, direction: Direction = 'RIGHT'): Promise<Layout> {
	const engine = await loadElk();
	const known = new Set(graph.elements.map((e) => e.id));
	const edges = graph.edges.filter((e) => known.has(e.source) && known.has(e.target));
	const result = await engine.layout({
		id: 'root',
		layoutOptions: {
			'elk.algorithm': 'layered',
			'elk.direction': direction,
			'elk.edgeRouting': 'ORTHOGONAL',
			'elk.layered.spacing.nodeNodeBetweenLayers': '70',
			'elk.spacing.nodeNode': '22',
			'elk.spacing.edgeLabel': '4',
			'elk.edgeLabels.inline': 'true',
			'elk.padding': '[top=12,left=12,bottom=12,right=12]',
			'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES'
		},
		children: graph.elements.map((el) => ({ id: el.id, width: boxWidth(el), height: BOX_HEIGHT })),
		edges: edges.map((e) => {
			const text = edgeLabel(e);
			return {
				id: e.id,
				sources: [e.source],
				targets: [e.target],
				labels: text ? [{ text, width: text.length * 6.6 + 10, height: 18 }] : []
			};
		})
	});
	const boxes = new Map<string, PlacedBox>();
	for (const c of result.children ?? []) {
		boxes.set(c.id, { id: c.id, x: c.x ?? 0, y: c.y ?? 0, width: c.width ?? 0, height: c.height ?? 0 });
	}
	const placed = new Map<string, PlacedEdge>();
	for (const e of result.edges ?? []) {
		const points: Point[] = [];
		for (const s of e.sections ?? []) {
			points.push(s.startPoint, ...(s.bendPoints ?? []), s.endPoint);
		}
		const l = e.labels?.[0];
		placed.set(e.id, {
			id: e.id,
			points,
			label: l ? { x: l.x ?? 0, y: l.y ?? 0, width: l.width ?? 0, height: l.height ?? 0 } : null
		});
	}
	return {
		key: `${direction}\n${structureKey(graph)}`,
		width: Math.ceil(result.width ?? 0),
		height: Math.ceil(result.height ?? 0),
		boxes,
		edges: placed
	};
}

/** An SVG path through ELK's points (orthogonal routing: straight segments). */
export function pathOf(points: Point[]): string {
	return points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x},${p.y}`).join(' ');
}
