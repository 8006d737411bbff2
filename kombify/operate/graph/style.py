"""What the renderers share: a colour per state, and short labels."""

from __future__ import annotations

from kombify.operate.graph.model import GraphEdge, GraphElement

# (fill, stroke) per state; anything else is drawn as unknown.
COLOURS: dict[str, tuple[str, str]] = {
    "healthy": ("#c8e6c9", "#2e7d32"),
    "running": ("#dcedc8", "#558b2f"),
    "routed": ("#dcedc8", "#558b2f"),
    "up": ("#dcedc8", "#558b2f"),
    "idle": ("#f1f8e9", "#9e9d24"),
    "down": ("#ffcdd2", "#c62828"),
    "degraded": ("#fff3cd", "#b7791f"),
    "unhealthy": ("#ffe0b2", "#e65100"),
    "stopped": ("#ffcdd2", "#c62828"),
    "missing": ("#ffcdd2", "#c62828"),
    "unreachable": ("#ef9a9a", "#b71c1c"),
    "not-wanted": ("#e1bee7", "#6a1b9a"),
    "not-deployed": ("#eceff1", "#78909c"),
    "unknown": ("#f5f5f5", "#9e9e9e"),
}


_QUIET = ("running", "healthy", "not-deployed")


def colours(state: str) -> tuple[str, str]:
    """(fill, stroke) of a state."""
    return COLOURS.get(state, COLOURS["unknown"])


def element_lines(element: GraphElement) -> list[str]:
    """The lines a box shows: its label, then what kind and state it is."""
    lines = [element.label]
    if element.kind == "service":
        image = element.attrs.get("image")
        if image:
            lines.append(str(image))
        replicas = element.attrs.get("replicas")
        mode = element.attrs.get("mode")
        extra = f"{mode} x{replicas}" if mode == "replicated" else f"x{replicas}"
        if mode == "global":
            extra = "global"
        if replicas is not None or mode == "global":
            lines.append(extra)
    lines.append(element.state)
    return lines


def edge_text(edge: GraphEdge) -> str:
    """The words on a line (its label; a VPN link or a broken placement adds its state)."""
    if edge.kind in ("placement", "vpn-link") and edge.state not in _QUIET:
        return f"{edge.label} {edge.state}".strip()
    return edge.label
