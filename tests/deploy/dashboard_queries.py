"""Reads the Grafana dashboard's panel queries, with Grafana's variables substituted.

Shared by deploy_lint_test.py (queries parse, panels are well formed) and
live_prometheus_test.py (every panel query returns data from a real Prometheus).
"""

import json
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "tuneledger.json"

# Grafana's built-in interval variables, with values that suit a short test run scraped every
# second (a rate window must span at least two scrapes).
BUILTIN_VARIABLES = {
    "__rate_interval": "30s",
    "__interval": "5s",
    "__range": "10m",
}


def load_dashboard(path=DASHBOARD):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard):
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr, variables):
    """Replaces $name and ${name} with variables[name] (plus Grafana's built-ins)."""
    values = dict(BUILTIN_VARIABLES)
    values.update(variables)

    def replace(match):
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"dashboard variable ${name} has no test value (expr: {expr})")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def panel_queries(dashboard, variables):
    """Yields (panel title, refId, expr with variables substituted) for every query panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel.get("title", ""), target.get("refId", ""), substitute(
                target.get("expr", ""), variables)
