"""Operating a deployed homelab: runs, services, logs, diagrams and user workflows."""
