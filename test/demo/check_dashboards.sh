#!/usr/bin/env bash
# Runs every Grafana panel's SQL (docker/grafana/dashboards/*.json) against
# the database psql reaches (the crypto demo's: test/demo.sh runs this as
# DEMO_AFTER) and fails unless each returns at least one row.  Grafana's
# $__timeFilter(col) macro is replaced by a filter that keeps every row.
set -uo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bad=0
n=0
while IFS=$'\t' read -r file title sql; do
	n=$((n + 1))
	rows=$(psql -X -At -v ON_ERROR_STOP=1 -c "SELECT count(*) FROM ($sql) panel" 2>&1)
	if [[ "$rows" =~ ^[0-9]+$ ]] && [ "$rows" -gt 0 ]; then
		echo "ok $n - $file: $title ($rows rows)"
	else
		echo "not ok $n - $file: $title: ${rows:-no rows}"
		bad=$((bad + 1))
	fi
done < <(python3 - "$top"/docker/grafana/dashboards/*.json <<'PY'
import json, re, sys, os
for path in sys.argv[1:]:
    for p in json.load(open(path))["panels"]:
        for t in p.get("targets", []):
            sql = re.sub(r"\$__timeFilter\(([^)]*)\)", r"(\1 IS NOT NULL)", t["rawSql"])
            print("%s\t%s\t%s" % (os.path.basename(path), p["title"], " ".join(sql.split())))
PY
)
echo "dashboards: $((n - bad)) of $n panel queries returned rows"
[ "$bad" -eq 0 ] && [ "$n" -gt 0 ]
